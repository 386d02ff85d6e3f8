"""Benchmarks: every figure is a ratio against a baseline run side by side in the same invocation."""
