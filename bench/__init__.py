"""Benchmarks, run with `python -m bench` from the project root."""
