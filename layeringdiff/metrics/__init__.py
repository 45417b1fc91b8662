"""Metrics: feature extractors separate from pure functions on tensors / features."""
