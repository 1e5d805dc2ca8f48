"""The pure core of stem_pg: models and rules with no I/O and no third-party imports."""
