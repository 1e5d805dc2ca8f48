"""Large arguments: a worker holds the payloads of the jobs it may still run, not of every job
whose outcome waits to be flushed (issue 20: 100 KB arguments took a worker to ~300 MB)."""

from __future__ import annotations

import asyncio
import gc
import random
import string
import threading
import tracemalloc
import uuid
from typing import Any

import psycopg

from stem_pg.client.app import EnqueueRequest, Stem
from stem_pg.db.stores.jobs import ClaimSizer, JobStore
from tests.helpers import running_worker, wait_for

SIZE = 200_000
JOBS = 30


def _decoded_bytes(snapshot: tracemalloc.Snapshot) -> int:
    """Memory still held that the claims' decoder allocated (msgspec's, called from
    stem_pg.db.args_json, or json's): the jobs' decoded arguments."""
    decoders = [tracemalloc.Filter(True, "*json/decoder.py"), tracemalloc.Filter(True, "*db/args_json.py")]
    return sum(stat.size for stat in snapshot.filter_traces(decoders).statistics("filename"))


def test_finished_jobs_waiting_for_their_flush_hold_no_arguments(
    app: Stem, db: psycopg.Connection[Any]
) -> None:
    """The flush is held back while 30 jobs of 200 KB run through a worker of two slots: their
    outcomes all wait, and with them their entries, but not their arguments. Before, each
    waiting entry kept its job's decoded arguments until the flush (6 MB here)."""
    ran: list[int] = []

    @app.task(name="big")
    async def big(blob: str) -> None:
        ran.append(len(blob))

    gate = threading.Event()
    tracemalloc.start()
    try:
        with running_worker(app, concurrency=2, prefetch_multiplier=1) as worker:
            flusher = wait_for(lambda: getattr(worker, "flusher", None), what="the worker's flusher")
            write = flusher._write

            async def held_write(conn: Any, batch: Any) -> Any:
                while not gate.is_set():
                    await asyncio.sleep(0.01)
                return await write(conn, batch)

            flusher._write = held_write
            app.enqueue_many([EnqueueRequest("big", {"blob": "x" * SIZE})] * JOBS)
            wait_for(lambda: len(ran) == JOBS, timeout=60, what="every job to run")
            wait_for(lambda: len(flusher.unflushed) == JOBS, timeout=10, what="their outcomes to wait")
            gc.collect()
            held = _decoded_bytes(tracemalloc.take_snapshot())
            holding = [e.job.id for e in list(flusher.unflushed.values()) if e.job.args is not None]
            gate.set()
            wait_for(
                lambda: db.execute(f'SELECT count(*) FROM "{app.namespace}".results').fetchone() == (JOBS,),
                timeout=30,
                what="the results",
            )
    finally:
        gate.set()
        tracemalloc.stop()
    assert ran == [SIZE] * JOBS
    # At most the two slots' jobs and one claim's worth; each payload is SIZE bytes of text.
    assert held < 4 * SIZE, f"{held:,} bytes of decoded arguments held by {JOBS} finished jobs"
    assert holding == []


async def test_a_claim_is_sized_by_the_payloads_of_the_one_before(app: Stem, database_url: str) -> None:
    """Claims of large payloads stop at a budget of bytes (the first, before any payload was
    seen, at a few rows), and say when they left jobs behind for the claim that follows."""
    blob = "".join(random.Random(1).choices(string.ascii_letters, k=100_000))  # TOAST cannot shrink it
    app.enqueue_many([EnqueueRequest("big", {"blob": blob})] * 10)
    store = JobStore(app.queries, result_ttl=60)
    store.sizer = ClaimSizer(budget=250_000, first=3)
    token = str(uuid.uuid4())
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:

        async def claim(limit: int) -> int:
            jobs = await store.claim(
                conn, queue="default", limit=limit, worker_id="w1", token=token, lease_seconds=60
            )
            assert all(job.args == {"blob": blob} for job in jobs)
            return len(jobs)

        assert (await claim(10), store.sizer.more) == (3, True)
        assert store.sizer.per_job is not None and store.sizer.per_job > 100_000
        assert (await claim(10), store.sizer.more) == (2, True)  # 250 KB of ~100 KB payloads
        assert (await claim(1), store.sizer.more) == (1, False)  # asked for no more
        assert (await claim(10), store.sizer.more) == (2, True)
        assert (await claim(10), store.sizer.more) == (2, True)  # the last ones (it cannot know)
        assert (await claim(10), store.sizer.more) == (0, False)


def test_small_payloads_are_not_held_back() -> None:
    sizer = ClaimSizer(budget=8_000_000, first=100)
    assert sizer.limit(800) == 100
    sizer.per_job = 5.0  # '{}' as stored
    assert sizer.limit(800) == 800
    sizer.per_job = 100_000.0
    assert sizer.limit(800) == 80
    sizer.per_job = 50_000_000.0
    assert sizer.limit(800) == 1
