"""stem_pg: the Stem task framework on PostgreSQL alone.

Public names are loaded lazily, so importing the pure core (``stem_pg.core``)
never pulls in psycopg, SQLAlchemy or Typer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stem_pg.app import EnqueueRequest, Stem
    from stem_pg.config import StemConfig
    from stem_pg.core.errors import (
        ConfigError,
        NamespaceError,
        NotMigratedError,
        RoutingConfigError,
        StemError,
        TaskCancelled,
        TaskError,
        TaskFailed,
        UnknownTaskError,
    )
    from stem_pg.core.routing import RoutingConfig
    from stem_pg.core.routing_registry import RoutingRegistry, RoutingSubscription
    from stem_pg.core.tasks import Reject, Retry
    from stem_pg.results import TaskResult
    from stem_pg.worker.context import TaskContext

_EXPORTS = {
    "Stem": "stem_pg.app",
    "EnqueueRequest": "stem_pg.app",
    "StemConfig": "stem_pg.config",
    "TaskResult": "stem_pg.results",
    "TaskContext": "stem_pg.worker.context",
    "Retry": "stem_pg.core.tasks",
    "Reject": "stem_pg.core.tasks",
    "RoutingConfig": "stem_pg.core.routing",
    "RoutingRegistry": "stem_pg.core.routing_registry",
    "RoutingSubscription": "stem_pg.core.routing_registry",
    **{
        name: "stem_pg.core.errors"
        for name in (
            "ConfigError",
            "NamespaceError",
            "NotMigratedError",
            "RoutingConfigError",
            "StemError",
            "TaskCancelled",
            "TaskError",
            "TaskFailed",
            "UnknownTaskError",
        )
    },
}

__all__ = [
    "ConfigError",
    "EnqueueRequest",
    "NamespaceError",
    "NotMigratedError",
    "Reject",
    "Retry",
    "RoutingConfig",
    "RoutingConfigError",
    "RoutingRegistry",
    "RoutingSubscription",
    "Stem",
    "StemConfig",
    "StemError",
    "TaskCancelled",
    "TaskContext",
    "TaskError",
    "TaskFailed",
    "TaskResult",
    "UnknownTaskError",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stem_pg' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
