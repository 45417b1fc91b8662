"""Evaluation runners: Tables 1, 2 and 4, generation for evaluation, comparison, reports.

Each ``configs/eval/<name>.yaml`` names a ``run(cfg)`` here; the metrics they compute are the pure
functions and extractors of :mod:`layeringdiff.metrics`.
"""
