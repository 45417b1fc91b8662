"""LayeringDiff-mini: the whole method trained from scratch at 64 px on CPU (docs/mini.md)."""
