"""The worker's runner slots: concurrency bound, FIFO, per-job cancellation."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from stem_pg.db.stores.rows import ClaimedJob
from stem_pg.worker.context import Inflight
from stem_pg.worker.slots import Slots


def _entry(n: int) -> Inflight:
    job = ClaimedJob(
        id=f"job-{n}",
        task="t",
        queue="default",
        priority=0,
        args={},
        headers=None,
        attempts=1,
        max_retries=0,
        expires_at=None,
        visibility_timeout=None,
        acks_late=True,
    )
    return Inflight(job, "token", 30.0)


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_runs_at_most_size_at_once_in_submit_order() -> None:
    async def main() -> tuple[int, list[str]]:
        slots = Slots(3)
        slots.start()
        running = 0
        peak = 0
        order: list[str] = []

        async def work(entry: Inflight) -> None:
            nonlocal running, peak
            order.append(entry.job.id)
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

        for n in range(10):
            slots.submit(_entry(n), work)
        await asyncio.sleep(0)
        while len(order) < 10:
            await asyncio.sleep(0.005)
        await slots.wait_idle()
        await slots.close()
        return peak, order

    peak, order = _run(main())
    assert peak == 3
    assert order == [f"job-{n}" for n in range(10)]


def test_jobs_that_never_suspend_run_back_to_back_on_one_runner() -> None:
    async def main() -> set[asyncio.Task[Any] | None]:
        slots = Slots(50)
        slots.start()
        runners: set[asyncio.Task[Any] | None] = set()
        done = 0

        async def work(entry: Inflight) -> None:
            nonlocal done
            runners.add(entry.task)
            done += 1

        for n in range(500):
            slots.submit(_entry(n), work)
        while done < 500:
            await asyncio.sleep(0.001)
        await slots.close()
        return runners

    assert len(_run(main())) <= 2  # not one task per job


def test_cancelling_one_job_leaves_its_runner_serving_the_next() -> None:
    async def main() -> dict[str, str]:
        slots = Slots(1)
        slots.start()
        seen: dict[str, str] = {}
        first = _entry(1)

        async def work(entry: Inflight) -> None:
            try:
                await asyncio.sleep(5 if entry is first else 0.01)
                seen[entry.job.id] = "finished"
            except asyncio.CancelledError:
                seen[entry.job.id] = "cancelled"

        async def stubborn(entry: Inflight) -> None:  # swallows its cancellation, then sleeps
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(5)
            await asyncio.sleep(0.01)
            seen[entry.job.id] = "finished anyway"

        slots.submit(first, work)
        stubborn_entry = _entry(2)
        slots.submit(stubborn_entry, stubborn)
        slots.submit(_entry(3), work)
        await asyncio.sleep(0.05)
        assert first.task is not None
        first.task.cancel()
        await asyncio.sleep(0.05)
        assert stubborn_entry.task is not None
        stubborn_entry.task.cancel()
        while len(seen) < 3:
            await asyncio.sleep(0.005)
        await slots.close()
        return seen

    assert _run(main()) == {"job-1": "cancelled", "job-2": "finished anyway", "job-3": "finished"}


def test_take_waiting_returns_unstarted_work_and_close_stops_idle_runners() -> None:
    async def main() -> tuple[list[str], int]:
        slots = Slots(1)
        slots.start()
        gate = asyncio.Event()

        async def work(entry: Inflight) -> None:
            await gate.wait()

        for n in range(4):
            slots.submit(_entry(n), work)
        await asyncio.sleep(0.01)
        waiting = [entry.job.id for entry, _ in slots.take_waiting()]
        gate.set()
        await slots.wait_idle()
        await slots.close()
        return waiting, len(asyncio.all_tasks())

    waiting, tasks_left = _run(main())
    assert waiting == ["job-1", "job-2", "job-3"]
    assert tasks_left == 2  # main() and the wait_for around it
