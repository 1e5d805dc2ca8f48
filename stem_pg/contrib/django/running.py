"""Running a Django task in a stem_pg worker: the handler registered under its module path.

The job's arguments are ``{"args": [...], "kwargs": {...}}``; the handler calls the task's
function with them (with a ``TaskContext`` first when the task takes one), sends the
tasks framework's ``task_started`` / ``task_finished`` signals, and returns the value (stored
as JSON).
A raised exception goes to stem_pg, which retries the job or records the failure. Django's
database connections of the handler's thread are closed when stale, before and after, as
Django does around a request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from django.db import close_old_connections
from django.utils import timezone

from stem_pg.contrib.django.compat import Task, TaskContext, TaskResultStatus, task_finished, task_started
from stem_pg.contrib.django.results import task_result

Handler = Callable[..., Any]


class StemContext(Protocol):
    """What the handler reads of stem_pg's TaskContext (the web process never loads the worker)."""

    @property
    def task_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...

    worker_id: str


def handler(task: Task[Any, Any], backend: str, sender: type) -> Handler:
    """The stem_pg handler of ``task`` (async for a coroutine function, else sync)."""
    if _is_async(task):

        async def run_async(args: list[Any], kwargs: dict[str, Any], ctx: StemContext) -> Any:
            result = _running(task, backend, args, kwargs, ctx)
            _send(sender, task_started, result)
            call = (_context(result), *args) if task.takes_context else tuple(args)
            try:
                value = await task.func(*call, **kwargs)
            except BaseException:
                _send(sender, task_finished, result, TaskResultStatus.FAILED)
                raise
            _send(sender, task_finished, result, TaskResultStatus.SUCCESSFUL)
            return value

        return run_async

    def run(args: list[Any], kwargs: dict[str, Any], ctx: StemContext) -> Any:
        close_old_connections()
        try:
            result = _running(task, backend, args, kwargs, ctx)
            _send(sender, task_started, result)
            call = (_context(result), *args) if task.takes_context else tuple(args)
            try:
                value = task.func(*call, **kwargs)
            except BaseException:
                _send(sender, task_finished, result, TaskResultStatus.FAILED)
                raise
            _send(sender, task_finished, result, TaskResultStatus.SUCCESSFUL)
            return value
        finally:
            close_old_connections()

    return run


def _is_async(task: Task[Any, Any]) -> bool:
    from inspect import iscoroutinefunction

    return iscoroutinefunction(task.func)


def _running(
    task: Task[Any, Any], backend: str, args: list[Any], kwargs: dict[str, Any], ctx: StemContext
) -> Any:
    now = timezone.now()
    return task_result(
        task,
        ctx.task_id,
        backend=backend,
        status=TaskResultStatus.RUNNING,
        args=args,
        kwargs=kwargs,
        started_at=now,
        worker_ids=[ctx.worker_id] * max(ctx.attempt, 1),
    )


def _context(result: Any) -> Any:
    return TaskContext(task_result=result)


def _send(sender: type, signal: Any, result: Any, status: Any = None) -> None:
    if status is not None:
        object.__setattr__(result, "status", status)
        object.__setattr__(result, "finished_at", timezone.now())
    signal.send(sender=sender, task_result=result)
