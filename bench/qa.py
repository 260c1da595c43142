"""QA items for the benchmarks (they live in the package: training uses them too)."""

from ragpress.training.qa import QAItem, answer_survives, load_items, noise_only

__all__ = ["QAItem", "answer_survives", "load_items", "noise_only"]
