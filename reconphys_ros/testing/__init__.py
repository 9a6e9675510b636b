"""Fixtures for tests and benchmarks (as numpy.testing): scenes with a known truth, built by the package's own core."""
