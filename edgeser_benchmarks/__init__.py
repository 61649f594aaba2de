"""Measurements: speed, size and (later) accuracy of bundles. Scripts run as ``python -m edgeser_benchmarks.NAME``."""
