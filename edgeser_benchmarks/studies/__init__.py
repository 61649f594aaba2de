"""Frozen studies: the one-off measurements that chose a design, kept as they were run (their index:
``edgeser_benchmarks/README.md``). They are not rerun when the code changes; the docs quote them as history."""
