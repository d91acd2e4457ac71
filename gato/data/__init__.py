"""Data: the episode schema, the sequence layout, and mixture sampling into batches."""
