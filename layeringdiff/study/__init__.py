"""Blinded user study for the paper's Table 3: a rating web app and its aggregation.

``python -m layeringdiff.study serve methods.NAME=DIR ...`` serves the output folders of one or
more methods (docs/architecture.md output folders) to participants with token links; ratings (1-5, text alignment
and image quality of the foreground, background and composite) go into a SQLite database that
``evaluate.py eval=table3 study.db=PATH`` turns into Table 3. See docs/study.md.
"""

RATED_IMAGES = ("foreground", "background", "composite")
CRITERIA = ("text_alignment", "image_quality")
SCORES = (1, 2, 3, 4, 5)
