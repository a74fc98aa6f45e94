"""Benchmarks behind `make bench`: speed and memory figures, written as JSON under reports/bench/."""
