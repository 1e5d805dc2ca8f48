"""Integrations with application frameworks, each behind its own extra (``stem_pg[django]``)."""
