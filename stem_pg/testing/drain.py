"""``run_until_idle``: drain a real namespace with the real worker, in this process, until no
job of its queues is due or running, and say how each job it ran ended."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stem_pg.core.errors import ConfigError, TaskError
from stem_pg.core.signals import TaskOutcome
from stem_pg.db.connect import connect_async
from stem_pg.db.stores.testing import TestingStore
from stem_pg.testing.eager_run import run_coroutine
from stem_pg.worker.claimable import ClaimableTasks
from stem_pg.worker.settings import WorkerSettings, default_worker_id
from stem_pg.worker.worker import Worker

if TYPE_CHECKING:
    from stem_pg.client.app import Stem

#: How often the drain looks whether anything is left (seconds).
CHECK_INTERVAL = 0.02


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended in ``run_until_idle``: ``state`` is ``succeeded``, ``failed``,
    ``cancelled``, or ``retried`` when its retry waits beyond the drain. ``result`` is the
    return value (decoded), ``error`` the failure, ``attempt`` the attempt that ended so."""

    id: str
    task: str
    queue: str
    state: str
    result: Any = None
    error: str | None = None
    attempt: int = 1
    dead_reason: str | None = None


def run_until_idle(
    app: Stem,
    queues: Iterable[str] | str | None = None,
    *,
    timeout: float = 30.0,
    with_scheduled: bool = False,
    concurrency: int = 10,
) -> list[JobOutcome]:
    """Run a worker for ``app`` in this process until no job of ``queues`` is due or running,
    then stop it; returns the outcomes in the order the jobs ended (see ``arun_until_idle``)."""
    return run_coroutine(
        arun_until_idle(app, queues, timeout=timeout, with_scheduled=with_scheduled, concurrency=concurrency)
    )


async def arun_until_idle(
    app: Stem,
    queues: Iterable[str] | str | None = None,
    *,
    timeout: float = 30.0,
    with_scheduled: bool = False,
    concurrency: int = 10,
) -> list[JobOutcome]:
    """The async twin of ``run_until_idle``, on the running event loop.

    ``queues`` defaults to every queue the app's tasks route to plus every queue holding live
    jobs. Jobs whose countdown, eta or retry delay lies ahead are left waiting, unless
    ``with_scheduled`` makes them due at once (so retries run without their backoff).
    Canvases go on as their members finish (the database enqueues the next ones). Raises
    TimeoutError when jobs are still due or running after ``timeout`` seconds (a paused
    queue, a rate limit, a handler that does not end), naming how many.
    """
    store = TestingStore(app.queries)
    tasks = ClaimableTasks(app.registry, claim_unregistered=False).names()
    async with await connect_async(app.url, role="testing") as conn:
        names = _queue_names(queues) or await _default_queues(app, store, conn)
        settings = WorkerSettings(
            queues=names,
            concurrency=concurrency,
            poll_interval=0.05,
            shutdown_grace=5.0,
            summary_interval=0,
            worker_id=f"{default_worker_id()}-drain",
        )
        worker = Worker(app, settings)
        outcomes: dict[str, JobOutcome] = {}

        def record(ended: TaskOutcome) -> None:
            if ended.info.worker_id == settings.worker_id:
                info = ended.info
                result = None if ended.result is None else json.loads(ended.result)
                outcomes.pop(info.task_id, None)  # ordered by the attempt that ended last
                outcomes[info.task_id] = JobOutcome(
                    info.task_id,
                    info.task,
                    info.queue,
                    ended.state,
                    result,
                    ended.error,
                    info.attempt,
                    ended.dead_reason,
                )

        signals = (app.signals.task_succeeded, app.signals.task_failed, app.signals.task_revoked)
        for signal in signals:
            signal.connect(record)
        running = asyncio.create_task(worker.run())
        try:
            await _until_idle(store, conn, running, names, tasks, timeout, with_scheduled)
        except BaseException:
            worker.request_stop()
            worker.request_stop()  # a second time: stop now, handing back what still runs
            raise
        finally:
            worker.request_stop()
            await running
            for signal in signals:
                signal.disconnect(record)
    return list(outcomes.values())


async def _until_idle(
    store: TestingStore,
    conn: Any,
    running: asyncio.Task[None],
    queues: tuple[str, ...],
    tasks: list[str] | None,
    timeout: float,
    with_scheduled: bool,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if running.done():
            running.result()  # the worker's own error, if it failed
            raise RuntimeError("run_until_idle: the worker stopped before the queues were drained")
        if with_scheduled:
            await store.make_due(conn, queues=queues, tasks=tasks)
        left = await store.unsettled(conn, queues=queues, tasks=tasks, scheduled=with_scheduled)
        if not left:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"run_until_idle: {left} job(s) still due or running on {', '.join(queues)}"
                f" after {timeout:g}s (a paused queue, a rate or concurrency limit, or a handler"
                " that does not end?)"
            )
        await asyncio.sleep(CHECK_INTERVAL)


def _queue_names(queues: Iterable[str] | str | None) -> tuple[str, ...]:
    if queues is None:
        return ()
    return (queues,) if isinstance(queues, str) else tuple(dict.fromkeys(queues))


async def _default_queues(app: Stem, store: TestingStore, conn: Any) -> tuple[str, ...]:
    """The queues the app's tasks route to, then those holding live jobs."""
    routed = []
    for task in app.registry:
        try:
            routed.append(app.planner.placement(task.name, None, None, ()).queue)
        except (TaskError, ConfigError):  # routed to a broadcast channel: no queue to drain
            continue
    found = [*routed, app.routing.default_queue, *await store.queues(conn)]
    return tuple(dict.fromkeys(found))
