"""Data: sources (MAGICK/BG-20k folders, synthetic), composite recipe, trimaps, shards, DataModule."""
