"""How a worker claims at low concurrency: once half its capacity is free (or nothing it
claimed is left waiting for a slot), not one job per finished job, so a CPU-bound fleet
with few slots makes a round trip and a commit per batch rather than per job."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest

from stem_pg.client.app import Stem
from stem_pg.db.stores.jobs import JobStore
from stem_pg.worker import flush
from tests.helpers import running_worker, wait_for


def test_a_worker_with_jobs_waiting_for_a_slot_claims_half_its_capacity_at_once(
    app: Stem, monkeypatch: pytest.MonkeyPatch
) -> None:
    claimed: list[int] = []
    claim = JobStore.claim

    async def counted(self: JobStore, conn: Any, **kwargs: Any) -> Any:
        jobs = await claim(self, conn, **kwargs)
        if jobs:
            claimed.append(len(jobs))
        return jobs

    monkeypatch.setattr(JobStore, "claim", counted)
    done: list[float] = []
    lock = threading.Lock()

    @app.task(name="batches.work")
    def work(n: int) -> None:
        time.sleep(0.01)
        with lock:
            done.append(time.monotonic())

    app.enqueue_many([("batches.work", {"n": n}) for n in range(48)])
    # capacity 2 x 4 = 8: the first claim takes 8, then each claim at least 4 (half of it)
    with running_worker(app, concurrency=2, prefetch_multiplier=4, poll_interval=5.0):
        wait_for(lambda: len(done) >= 48, 20, "48 jobs to finish")
    assert sum(claimed) == 48
    assert len(claimed) <= 12, claimed  # 8 + 10 x 4; one claim per finished job took 41


def test_a_flush_asked_for_right_after_another_waits_out_the_linger(
    app: Stem, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Outcomes of a busy worker are written together: a flush asked for within the linger of
    # the last one's end (20 ms by default) waits out the rest.
    writes: list[tuple[float, int]] = []
    send_finish = JobStore.send_finish

    async def counted(self: JobStore, conn: Any, *, outcomes: Any) -> Any:
        writes.append((time.monotonic(), len(outcomes)))
        return await send_finish(self, conn, outcomes=outcomes)

    monkeypatch.setattr(JobStore, "send_finish", counted)

    @app.task(name="batches.quick")
    def quick(n: int) -> None:
        time.sleep(0.002)

    app.enqueue_many([("batches.quick", {"n": n}) for n in range(40)])
    with running_worker(app, concurrency=2, prefetch_multiplier=4, poll_interval=5.0):
        wait_for(lambda: sum(n for _, n in writes) >= 40, 20, "40 outcomes written")
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(writes)]
    assert gaps and min(gaps) >= 0.019, gaps  # 2-3 ms apart with the linger of 2 ms it had
    assert len(writes) <= 8, writes  # 40 jobs of 2 ms on 2 slots: ~40 ms of work


def test_a_full_batch_of_outcomes_ends_the_linger(app: Stem, monkeypatch: pytest.MonkeyPatch) -> None:
    # A batch of FLUSH_BATCH outcomes is written at once, however long the linger: waiting
    # for more gains little once a batch is that big.
    monkeypatch.setattr(flush, "FLUSH_LINGER", 30.0)
    monkeypatch.setattr(flush, "FLUSH_BATCH", 10)
    written: list[int] = []
    send_finish = JobStore.send_finish

    async def counted(self: JobStore, conn: Any, *, outcomes: Any) -> Any:
        written.append(len(outcomes))
        return await send_finish(self, conn, outcomes=outcomes)

    monkeypatch.setattr(JobStore, "send_finish", counted)

    @app.task(name="batches.instant")
    async def instant(n: int) -> None:
        return None

    app.enqueue_many([("batches.instant", {"n": n}) for n in range(5)])
    with running_worker(app, concurrency=20, poll_interval=5.0):
        wait_for(lambda: sum(written) >= 5, 10, "the first 5 outcomes written (after a quiet spell: at once)")
        app.enqueue_many([("batches.instant", {"n": n}) for n in range(5, 45)])
        # within the 30 s linger of the first write only full batches end it early (what is
        # left below 10 waits for the linger, or for the final flush)
        wait_for(lambda: sum(written) >= 36, 10, "40 more outcomes written in batches of 10 or more")
        during = list(written)
    assert len(during) >= 2 and all(n >= 10 for n in during[1:]), during
