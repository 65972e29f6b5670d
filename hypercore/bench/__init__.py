"""Benchmark workloads, shared by the benchmark scripts and the performance chapter."""
