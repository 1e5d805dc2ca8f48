"""A backend for Django's tasks framework that runs ``@task`` functions on stem_pg workers.

    TASKS = {"default": {"BACKEND": "stem_pg.contrib.django.tasks.StemBackend"}}

It follows ``django.tasks`` (Django >= 6.0) when Django has it, else the ``django_tasks``
backport (``stem_pg.contrib.django.compat``). ``task.enqueue(...)`` inserts a stem_pg job
named after the function's module path (``shop.tasks.send_receipt``) with the arguments as
``{"args": [...], "kwargs": {...}}``; on the database of ``STEM_PG["database"]`` it is written
through Django's own connection, so inside ``transaction.atomic()`` it exists only if the
block commits. Workers (``manage.py stem_worker``) register every task this backend saw
(``stem_pg.contrib.django.worker``). ``get_result`` reads the task's row
(``stem_pg.contrib.django.results`` maps the states).

Backend ``OPTIONS``: ``MAX_RETRIES`` (default 0: a raised exception fails the task, as
Django's own backends do). ``QUEUES`` (Django's key, beside ``OPTIONS``) lists the stem_pg
queues tasks may name (default ``["default"]``); a task's ``priority`` is clamped into its
queue's range (0..9 by default, so negative ones run as 0).
"""

from __future__ import annotations

import importlib
import threading
from typing import Any, ParamSpec, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.utils import timezone

from stem_pg.client.app import Stem
from stem_pg.contrib.django.compat import (
    BaseTaskBackend,
    Task,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_enqueued,
)
from stem_pg.contrib.django.results import from_status, task_result
from stem_pg.contrib.django.running import handler
from stem_pg.contrib.django.settings import database_alias, get_app, stem_settings
from stem_pg.core.envelope import check_task_id
from stem_pg.core.errors import TaskError
from stem_pg.db.stores.tasks import show_task

T = TypeVar("T")
P = ParamSpec("P")

_registering = threading.Lock()


class StemBackend(BaseTaskBackend):
    """Django tasks on stem_pg: deferred (``run_after``), async, prioritised, with results."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options = {str(k).upper(): v for k, v in dict(params.get("OPTIONS") or {}).items()}
        unknown = sorted(set(options) - {"MAX_RETRIES"})
        if unknown:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS']: unknown option {unknown[0]!r} (known: MAX_RETRIES)"
            )
        self.max_retries = options.get("MAX_RETRIES", 0)
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS']['MAX_RETRIES'] must be a whole number >= 0"
            )
        #: Every task defined for this backend, by module path (what the worker registers).
        self.tasks: dict[str, Task[Any, Any]] = {}

    def validate_task(self, task: Task[Any, Any]) -> None:
        super().validate_task(task)
        self.tasks.setdefault(task.module_path, task)

    def register(self, app: Stem, task: Task[Any, Any]) -> None:
        """Register ``task`` on ``app`` under its module path, unless it is already (the
        backends of other threads register on the same app)."""
        with _registering:
            if app.registry.get(task.module_path) is None:
                run = handler(task, self.alias, type(self))
                app.task(name=task.module_path, max_retries=self.max_retries)(run)

    def register_all(self, app: Stem) -> list[str]:
        """Register every task this backend saw on ``app``; their names."""
        for task in list(self.tasks.values()):
            self.register(app, task)
        return sorted(self.tasks)

    def enqueue(self, task: Task[P, T], args: P.args, kwargs: P.kwargs) -> TaskResult[T]:  # type: ignore[valid-type]
        self.validate_task(task)
        app = get_app()
        self.register(app, task)  # max_retries is fixed at enqueue: the app must know the task
        handle = app.enqueue(
            task.module_path,
            {"args": list(args), "kwargs": dict(kwargs)},
            queue=task.queue_name,
            priority=max(task.priority, 0) if task.priority else None,
            eta=task.run_after,
            connection=None if "url" in stem_settings() else connections[database_alias()],
        )
        result: TaskResult[T] = task_result(
            task,
            handle.id,
            backend=self.alias,
            status=TaskResultStatus.READY,
            args=list(args),
            kwargs=dict(kwargs),
            enqueued_at=timezone.now(),
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[Any]:
        """The task's current state; TaskResultDoesNotExist for an id stem_pg does not know
        (or that is not a task of this backend)."""
        try:
            task_id = check_task_id(result_id, what="result_id")
        except TaskError as exc:
            raise TaskResultDoesNotExist(str(exc)) from None
        app = get_app()
        with app.pool.connection() as conn:
            row = show_task(conn, app.backend.queries, task_id)
        if row is None:
            raise TaskResultDoesNotExist(result_id)
        return from_status(self._task(row.task, result_id), row, backend=self.alias)

    def _task(self, path: str, result_id: str) -> Task[Any, Any]:
        """The Task named ``path``: one this backend saw, else the module's attribute (as
        Django's own backends import it when reading a result)."""
        task = self.tasks.get(path)
        if task is None:
            module, _, name = path.rpartition(".")
            try:
                task = getattr(importlib.import_module(module), name, None) if module else None
            except ImportError:
                task = None
        if not isinstance(task, Task) or task.backend != self.alias:
            raise TaskResultDoesNotExist(f"{result_id} is not a task of backend {self.alias!r}")
        return task
