"""Benchmarking: timing primitives, the ways to run a model (modes), the timing grid,
the results' schema and files, and FLOPs per part (torch only, but for configs)."""
