"""stem_pg: the Stem task framework on PostgreSQL alone.

Public names are loaded lazily, so importing the pure core (``stem_pg.core``)
never pulls in psycopg, SQLAlchemy or Typer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stem_pg.client.app import EnqueueRequest, Stem
    from stem_pg.client.canvas import CanvasResult
    from stem_pg.client.results import TaskResult
    from stem_pg.client.tasks import AsyncTask, SyncTask, Task, TaskCall, Workflow
    from stem_pg.client.workflows import WorkflowCancelled, WorkflowError, WorkflowFailed, WorkflowRun
    from stem_pg.config.settings import StemConfig
    from stem_pg.core.canvas import Signature, chain, chord, group
    from stem_pg.core.errors import (
        ConfigError,
        DatabaseUnavailable,
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
    from stem_pg.core.signals import (
        BeatFired,
        CallNext,
        ControlInfo,
        PublishInfo,
        TaskInfo,
        TaskOutcome,
        WorkerInfo,
        WorkflowInfo,
    )
    from stem_pg.core.signing import Signing
    from stem_pg.core.tasks import Reject, Retry
    from stem_pg.worker.context import TaskContext
    from stem_pg.worker.workflows import ChildWorkflowFailed, EventTimeout, WorkflowContext

_EXPORTS = {
    "Stem": "stem_pg.client.app",
    "EnqueueRequest": "stem_pg.client.app",
    "StemConfig": "stem_pg.config.settings",
    "TaskResult": "stem_pg.client.results",
    **{name: "stem_pg.client.tasks" for name in ("AsyncTask", "SyncTask", "Task", "TaskCall", "Workflow")},
    "TaskContext": "stem_pg.worker.context",
    "Retry": "stem_pg.core.tasks",
    "Reject": "stem_pg.core.tasks",
    "RoutingConfig": "stem_pg.core.routing",
    "RoutingRegistry": "stem_pg.core.routing_registry",
    "RoutingSubscription": "stem_pg.core.routing_registry",
    "Signature": "stem_pg.core.canvas",
    "Signing": "stem_pg.core.signing",
    "BeatFired": "stem_pg.core.signals",
    "ControlInfo": "stem_pg.core.signals",
    "WorkflowInfo": "stem_pg.core.signals",
    "CallNext": "stem_pg.core.signals",
    "PublishInfo": "stem_pg.core.signals",
    "TaskInfo": "stem_pg.core.signals",
    "TaskOutcome": "stem_pg.core.signals",
    "WorkerInfo": "stem_pg.core.signals",
    "chain": "stem_pg.core.canvas",
    "group": "stem_pg.core.canvas",
    "chord": "stem_pg.core.canvas",
    "CanvasResult": "stem_pg.client.canvas",
    "WorkflowContext": "stem_pg.worker.workflows",
    "EventTimeout": "stem_pg.worker.workflows",
    "ChildWorkflowFailed": "stem_pg.worker.workflows",
    "WorkflowRun": "stem_pg.client.workflows",
    "WorkflowError": "stem_pg.client.workflows",
    "WorkflowFailed": "stem_pg.client.workflows",
    "WorkflowCancelled": "stem_pg.client.workflows",
    **{
        name: "stem_pg.core.errors"
        for name in (
            "ConfigError",
            "DatabaseUnavailable",
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
    "AsyncTask",
    "BeatFired",
    "CallNext",
    "CanvasResult",
    "ChildWorkflowFailed",
    "ConfigError",
    "ControlInfo",
    "DatabaseUnavailable",
    "EnqueueRequest",
    "EventTimeout",
    "NamespaceError",
    "NotMigratedError",
    "PublishInfo",
    "Reject",
    "Retry",
    "RoutingConfig",
    "RoutingConfigError",
    "RoutingRegistry",
    "RoutingSubscription",
    "Signature",
    "Signing",
    "Stem",
    "StemConfig",
    "StemError",
    "SyncTask",
    "Task",
    "TaskCall",
    "TaskCancelled",
    "TaskContext",
    "TaskError",
    "TaskFailed",
    "TaskInfo",
    "TaskOutcome",
    "TaskResult",
    "UnknownTaskError",
    "WorkerInfo",
    "Workflow",
    "WorkflowCancelled",
    "WorkflowContext",
    "WorkflowError",
    "WorkflowFailed",
    "WorkflowInfo",
    "WorkflowRun",
    "chain",
    "chord",
    "group",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stem_pg' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
