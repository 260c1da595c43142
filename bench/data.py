"""Corpora fetched from the package registry (moved into the package for training reuse)."""

from ragpress.training.corpora import wikipedia_summaries

__all__ = ["wikipedia_summaries"]
