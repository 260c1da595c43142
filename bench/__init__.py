"""Benchmarks for ragpress (run each module with ``python -m bench.<name>``)."""
