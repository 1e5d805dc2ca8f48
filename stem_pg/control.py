"""Compatibility path: ``stem_pg.control.Control`` lives in ``stem_pg.client.control``."""

from stem_pg.client.control import Control

__all__ = ["Control"]
