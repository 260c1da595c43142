"""Reproducible training of the small learned parts (the attention probe, ...)."""
