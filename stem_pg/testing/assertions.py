"""What was enqueued: ``enqueued_jobs`` reads the jobs table (or, in eager mode, the eager
record); ``assert_enqueued`` / ``assert_not_enqueued`` fail with a message listing it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stem_pg.db.stores.testing import TestingStore
from stem_pg.testing.eager import active_eager, only_eager_app
from stem_pg.testing.eager_run import task_name_of

if TYPE_CHECKING:
    from stem_pg.client.app import Stem

#: Jobs an assertion message lists at most.
SHOWN = 20


@dataclass(frozen=True)
class EnqueuedJob:
    """A job as the assertions see it: a live row of the jobs table, or an eager job."""

    id: str
    task: str
    queue: str
    priority: int
    state: str
    kwargs: dict[str, Any]
    headers: dict[str, Any]
    attempts: int

    def __str__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.kwargs.items())
        return f"{self.task}({args}) queue={self.queue} priority={self.priority} state={self.state}"


def enqueued_jobs(app: Stem, task: object = None, *, queue: str | None = None) -> list[EnqueuedJob]:
    """The live jobs of ``app``'s namespace (queued, retried or running), oldest first, of
    ``task`` (a name or a task) and ``queue`` when given. In eager mode: every job enqueued in
    the eager block, whatever its end (no database is read)."""
    name = None if task is None else task_name_of(task)
    eager = active_eager(app)
    if eager is not None:
        return [
            EnqueuedJob(j.id, j.task, j.queue, j.priority, j.state, j.kwargs, j.headers, j.attempts)
            for j in eager.jobs
            if (name is None or j.task == name) and (queue is None or j.queue == queue)
        ]
    with app.pool.connection() as conn:
        rows = TestingStore(app.queries).jobs(conn, task=name, queue=queue)
    return [
        EnqueuedJob(r.id, r.task, r.queue, r.priority, r.state, r.args, r.headers, r.attempts) for r in rows
    ]


def assert_enqueued(
    task: object,
    *,
    kwargs: Mapping[str, Any] | None = None,
    queue: str | None = None,
    priority: int | None = None,
    count: int | None = None,
    app: Stem | None = None,
) -> list[EnqueuedJob]:
    """Fail unless a job of ``task`` is enqueued (exactly ``count`` of them, when given) whose
    arguments include ``kwargs`` (other arguments may be there too), on ``queue`` and at
    ``priority`` when given; returns the jobs that match. ``app`` may be left out for a task
    that knows its app, or inside the only eager block running."""
    app = _app_for(task, app, "assert_enqueued")
    name = task_name_of(task)
    everything = enqueued_jobs(app)
    found = [job for job in everything if _matches(job, name, kwargs, queue, priority)]
    if (count is None and found) or (count is not None and len(found) == count):
        return found
    wanted = f"{count} job(s)" if count is not None else "a job"
    raise AssertionError(
        f"expected {wanted} of task {name!r}{_filters(kwargs, queue, priority)}; found {len(found)}"
        f" {_listing(everything)}"
    )


def assert_not_enqueued(
    task: object,
    *,
    kwargs: Mapping[str, Any] | None = None,
    queue: str | None = None,
    priority: int | None = None,
    app: Stem | None = None,
) -> None:
    """Fail when a job of ``task`` matching the filters (as in ``assert_enqueued``) is enqueued."""
    app = _app_for(task, app, "assert_not_enqueued")
    name = task_name_of(task)
    everything = enqueued_jobs(app)
    found = [job for job in everything if _matches(job, name, kwargs, queue, priority)]
    if found:
        raise AssertionError(
            f"expected no job of task {name!r}{_filters(kwargs, queue, priority)}; found {len(found)}"
            f" {_listing(everything)}"
        )


def _matches(
    job: EnqueuedJob, name: str, kwargs: Mapping[str, Any] | None, queue: str | None, priority: int | None
) -> bool:
    if job.task != name or (queue is not None and job.queue != queue):
        return False
    if priority is not None and job.priority != priority:
        return False
    return kwargs is None or all(key in job.kwargs and job.kwargs[key] == v for key, v in kwargs.items())


def _filters(kwargs: Mapping[str, Any] | None, queue: str | None, priority: int | None) -> str:
    parts = []
    if kwargs is not None:
        parts.append(f" with kwargs including {dict(kwargs)!r}")
    if queue is not None:
        parts.append(f" on queue {queue!r}")
    if priority is not None:
        parts.append(f" at priority {priority}")
    return "".join(parts)


def _listing(jobs: list[EnqueuedJob]) -> str:
    if not jobs:
        return "(nothing is enqueued)"
    lines = [f"  {job}" for job in jobs[:SHOWN]]
    if len(jobs) > SHOWN:
        lines.append(f"  ... and {len(jobs) - SHOWN} more")
    return f"among the {len(jobs)} enqueued job(s):\n" + "\n".join(lines)


def _app_for(task: object, app: Stem | None, what: str) -> Stem:
    """The app to look in: given, the task's own, or that of the only eager block."""
    if app is not None:
        return app
    own = getattr(task, "app", None)
    if own is None:  # a decorated handler: its enqueue is a partial of the app's method
        own = getattr(getattr(getattr(task, "enqueue", None), "func", None), "__self__", None)
    if own is None:
        own = only_eager_app()
    if own is None or not hasattr(own, "planner"):
        raise TypeError(f"{what}: pass app=... (cannot tell the app from {task!r})")
    found: Stem = own
    return found
