"""A local page for decomposing your own image: ``python -m layeringdiff.app`` (127.0.0.1).

Upload an image, draw a box or paint a mask over it, run the installed layering (classical by
default; layeringdiff when its exported weights exist) and see the layers over a checkerboard,
with the output folder's PNGs, PSD and ORA to download. A Flask app (the stack the user study
uses); see docs/inference.md.
"""

from layeringdiff.app.server import create_app

__all__ = ["create_app"]
