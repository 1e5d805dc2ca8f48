"""The worker's start-up banner, Celery-like: what runs, against which database and
namespace, consuming what, with which tasks. One INFO record (several lines in text,
one object with the same facts as fields in JSON); the URL's password never shows."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from stem_pg.core.logs import bind_process, stem_version
from stem_pg.core.redaction import redact
from stem_pg.core.routing_registry import RoutingRegistry
from stem_pg.worker.settings import WorkerSettings

if TYPE_CHECKING:
    from stem_pg.client.app import Stem

log = logging.getLogger("stem_pg.worker.banner")


def queue_labels(routing: RoutingRegistry, queues: tuple[str, ...]) -> list[str]:
    """``name [min-max]`` per queue: the priorities each one stores."""
    labels = []
    for name in queues:
        try:
            span = routing.queue(name).priority_range
            labels.append(f"{name} [priority {span.min}-{span.max}]")
        except Exception:  # the subscription resolved it already; a banner never fails a start
            labels.append(name)
    return labels


def banner_fields(app: Stem, settings: WorkerSettings, processes: int) -> dict[str, Any]:
    """What the banner says, as the fields of its JSON line."""
    return {
        "event": "banner",
        "version": stem_version(),
        "worker": settings.worker_id,
        "namespace": app.namespace,
        "database": redact(app.url),
        "queues": queue_labels(app.routing, settings.queues),
        "broadcasts": list(settings.broadcasts),
        "concurrency": settings.concurrency,
        "prefetch_multiplier": settings.prefetch_multiplier,
        "processes": processes,
        "tasks": sorted(task.name for task in app.registry),
    }


def log_banner(app: Stem, settings: WorkerSettings, processes: int) -> dict[str, Any]:
    """Log the banner once per ``stem worker run`` (before any process forks); returns its fields."""
    bind_process(namespace=app.namespace)  # the supervisor's own lines name it too
    fields = banner_fields(app, settings, processes)
    tasks = fields["tasks"]
    lines = [
        f"stem_pg worker v{fields['version']} ready to start",
        f"  worker:      {fields['worker']}",
        f"  namespace:   {fields['namespace']}",
        f"  database:    {fields['database']}",
        f"  queues:      {', '.join(fields['queues'])}",
        f"  broadcasts:  {', '.join(fields['broadcasts']) or '(none)'}",
        f"  concurrency: {settings.concurrency} per process (prefetch x{settings.prefetch_multiplier})",
        f"  processes:   {processes}",
        f"  tasks ({len(tasks)}):",
        *(f"    . {name}" for name in tasks),
    ]
    log.info("%s", "\n".join(lines), extra=fields)
    return fields
