"""A stem_pg task's state as a Django ``TaskResult``: statuses, errors, return value.

Live states are READY (``queued``, and ``retried``: waiting to run again) or RUNNING;
``succeeded`` is SUCCESSFUL; ``failed`` and ``cancelled`` (revoked, expired) are FAILED.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from stem_pg.contrib.django.compat import Task, TaskError, TaskResult, TaskResultStatus
from stem_pg.core.states import TaskState
from stem_pg.db.stores.rows import TaskStatus

STATUSES = {
    TaskState.QUEUED: TaskResultStatus.READY,
    TaskState.RETRIED: TaskResultStatus.READY,
    TaskState.RUNNING: TaskResultStatus.RUNNING,
    TaskState.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    TaskState.FAILED: TaskResultStatus.FAILED,
    TaskState.CANCELLED: TaskResultStatus.FAILED,
}


def task_result(
    task: Task[Any, Any],
    task_id: str,
    *,
    backend: str,
    status: Any,  # a TaskResultStatus (Django's TextChoices: untyped without django-stubs)
    args: list[Any],
    kwargs: dict[str, Any],
    enqueued_at: datetime | None = None,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    errors: list[TaskError] | None = None,
    worker_ids: list[str] | None = None,
) -> TaskResult[Any]:
    """A Django TaskResult (its constructor is the same in django.tasks and django_tasks)."""
    return TaskResult(
        task=task,
        id=task_id,
        status=status,
        enqueued_at=enqueued_at,
        started_at=started_at,
        last_attempted_at=started_at,
        finished_at=finished_at,
        args=args,
        kwargs=kwargs,
        backend=backend,
        errors=errors or [],
        worker_ids=worker_ids or [],
    )


def from_status(task: Task[Any, Any], row: TaskStatus, *, backend: str) -> TaskResult[Any]:
    """The TaskResult of ``row`` (``stem tasks show``'s row). Its ``args``/``kwargs`` are the
    job's while it is live (a finished task keeps its result, not its arguments); its
    ``worker_ids`` hold the last worker's id once per attempt (so ``attempts`` is stem_pg's)."""
    state = TaskState(row.state)
    call = row.args or {}
    result = task_result(
        task,
        row.id,
        backend=backend,
        status=STATUSES[state],
        args=list(call.get("args") or []),
        kwargs=dict(call.get("kwargs") or {}),
        enqueued_at=row.enqueued_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        errors=[error_of(row)] if row.error and state is not TaskState.SUCCEEDED else [],
        worker_ids=[row.worker_id] * row.attempts if row.worker_id else [],
    )
    if state is TaskState.SUCCEEDED:
        object.__setattr__(result, "_return_value", row.result)  # frozen, as the backends set it
    return result


def error_of(row: TaskStatus) -> TaskError:
    """The task's last error; the exception's class path is read from its traceback's last line
    (``package.module.Error: ...``), where Python names it (bare for built-in exceptions)."""
    return TaskError(
        exception_class_path=class_path(row.traceback, row.error), traceback=row.traceback or row.error or ""
    )


def class_path(traceback: str | None, error: str | None) -> str:
    lines = [line for line in (traceback or "").splitlines() if line and not line[0].isspace()]
    last = lines[-1] if lines else (error or "")
    name = last.partition(":")[0].strip()
    if not name or " " in name:
        return "builtins.Exception"
    if "." not in name:
        found = getattr(builtins, name, None)
        is_builtin = isinstance(found, type) and issubclass(found, BaseException)
        return f"builtins.{name}" if is_builtin else "builtins.Exception"
    return name
