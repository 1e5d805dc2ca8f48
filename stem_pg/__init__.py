"""stem_pg: the Stem task framework on PostgreSQL alone."""

from __future__ import annotations

from stem_pg.config import StemConfig
from stem_pg.core.errors import (
    ConfigError,
    NamespaceError,
    NotMigratedError,
    RoutingConfigError,
    StemError,
    TaskError,
    UnknownTaskError,
)

__all__ = [
    "ConfigError",
    "NamespaceError",
    "NotMigratedError",
    "RoutingConfigError",
    "StemConfig",
    "StemError",
    "TaskError",
    "UnknownTaskError",
]

__version__ = "0.1.0"
