"""Tiny, randomly initialised models of the real classes, saved with ``save_pretrained``.

Tests, the smoke experiments and CPU benchmarks build these into a folder and then load them
back through the same loading code (``layeringdiff.weights`` + ``from_pretrained``) that the
real weights go through. They produce meaningless outputs but exercise every code path.
"""
