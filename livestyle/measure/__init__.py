"""Measure phase: quality metrics, speed benchmarks, the cost model, the architecture sweep and flicker."""
