"""Prometheus metrics (the optional ``metrics`` extra): what a worker or beat process counts,
served on ``--metrics-port``, and the namespace exporter that reads its gauges from the database.

Nothing here is imported unless metrics are asked for: prometheus_client stays optional.
"""
