"""Environment and files to core objects: settings, the routing file, the schedule file."""

from stem_pg.config.settings import StemConfig

__all__ = ["StemConfig"]
