"""Benchmarks (never run by the test suite): ``python -m bench.ingest``."""
