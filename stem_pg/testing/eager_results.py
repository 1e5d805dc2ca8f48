"""Result handles of eager jobs: a TaskResult (and CanvasResult) that reads the eager
record instead of the database, so ``get()``, ``state`` and ``info`` work without one."""

from __future__ import annotations

from typing import Any

from stem_pg.client.backend import Backend
from stem_pg.client.canvas import CanvasResult
from stem_pg.client.results import TaskResult, unwrap
from stem_pg.core.errors import ResultTimeout
from stem_pg.db.stores.rows import StoredResult, TaskStatus
from stem_pg.testing.eager_run import EAGER_WORKER_ID, EagerJob, failed_first


class EagerResult(TaskResult):
    """The handle of a job eager mode ran. ``job`` is its record (``EagerJob``)."""

    def __init__(self, backend: Backend, job: EagerJob) -> None:
        super().__init__(backend, job.id)
        self.job = job

    def status(self) -> TaskStatus | None:
        job = self.job
        return TaskStatus(
            job.id,
            job.task,
            job.queue,
            job.priority,
            job.state,
            job.attempts,
            job.enqueued_at,
            job.started_at,
            job.finished_at,
            EAGER_WORKER_ID if job.started_at else None,
            job.error,
            result=job.result,
            traceback=job.traceback,
            args=job.kwargs,
            headers=job.headers,
            errors=[{"attempt": n, "error": error} for n, error in enumerate(job.errors, 1)],
        )

    def result(self) -> StoredResult | None:
        job = self.job
        if job.finished_at is None or not job.kept:
            return None
        return StoredResult(
            job.id,
            job.task,
            job.queue,
            job.priority,
            job.state,
            job.result,
            job.error,
            job.traceback,
            job.attempts,
            job.enqueued_at,
            job.started_at,
            job.finished_at,
            EAGER_WORKER_ID if job.started_at else None,
        )

    def get(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        """The value, or TaskFailed / TaskCancelled as a worker's outcome would raise them.
        The job ran at enqueue, so nothing is waited for: a success of an ``ignore_result``
        task (which stores nothing) raises ResultTimeout at once."""
        stored = self.result()
        if stored is None:
            raise ResultTimeout(self.id, timeout or 0.0, None if self.job.finished else self.job.state)
        return unwrap(stored, propagate=propagate)

    async def wait(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        return self.get(timeout, propagate=propagate)


class EagerCanvasResult(CanvasResult):
    """The handle of a canvas eager mode ran; ``status()`` comes from the members' records."""

    def status(self) -> dict[str, Any] | None:
        jobs = [member.job for member in self.members if isinstance(member, EagerResult)]
        failed = failed_first(jobs)
        return {
            "id": self.id,
            "kind": self.kind.value,
            "state": "failed" if failed is not None else "succeeded",
            "members": [{"task_id": j.id, "task": j.task, "state": j.state, "error": j.error} for j in jobs],
        }
