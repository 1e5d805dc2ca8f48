"""Benchmarks of stem_pg (and pgqueuer, the comparator): see bench/README.md."""
