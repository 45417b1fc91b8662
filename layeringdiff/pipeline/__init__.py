"""Inference stages: generate, foreground determination, layering, baselines, full pipeline."""
