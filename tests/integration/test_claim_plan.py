"""The claim's plan when a burst lands on a quiet queue: a walk of the claim index in its
order, never a read and sort of the whole backlog, whatever the statistics say.

EXPLAIN only (no timing): the plan made on the worker's own claim connection, for a
backlog the planner was never told about (fresh namespace, no ANALYZE), for one it
last saw empty (analyzed while quiet), and for one it knows (analyzed).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import EnqueueRequest, Stem
from stem_pg.worker.settings import WorkerSettings
from stem_pg.worker.worker import Worker

#: A burst of jobs carrying 1 kB of arguments each: 4,000 pages, on which a planner that
#: does not know the table estimates the claim's rows at ~2 and prefers reading and sorting
#: them all (as for 100k jobs without arguments), yet cheap to enqueue.
BACKLOG = 20_000
ARGS = {"pad": "x" * 1000}


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _analyze(database_url: str, namespace: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("ANALYZE {}.jobs").format(sql.Identifier(namespace)))


async def _claim_plan(app: Stem) -> list[dict[str, Any]]:
    """The claim's plan nodes, planned on the claim connection the worker opens."""
    worker = Worker(app, WorkerSettings(queues=("default",)))
    worker._assemble()
    conn = await worker.conns.claim.get()
    try:
        params = {
            "queue": "default",
            "limit": 10,
            "worker_id": "w1",
            "token": str(uuid.uuid4()),
            "lease_seconds": 30,
            "tasks": ["t"],  # the worker's registered task names
        }
        cur = await conn.execute("EXPLAIN (FORMAT JSON) " + app.queries["job_claim"], params)
        row = await cur.fetchone()
    finally:
        await worker.conns.claim.discard()
        worker.executor.pool.shutdown()
    assert row is not None
    return list(_nodes(row[0][0]["Plan"]))


@pytest.mark.parametrize("statistics", ["never analyzed", "analyzed while empty", "analyzed"])
async def test_claim_walks_the_claim_index_whatever_the_statistics(
    app: Stem, database_url: str, statistics: str
) -> None:
    if statistics == "analyzed while empty":
        _analyze(database_url, app.namespace)
    app.enqueue_many([EnqueueRequest("t", ARGS)] * BACKLOG)
    if statistics == "analyzed":
        _analyze(database_url, app.namespace)

    nodes = await _claim_plan(app)

    kinds = [n["Node Type"] for n in nodes]
    assert not [k for k in kinds if "Sort" in k], f"the claim sorts the backlog: {kinds}"
    backlog_reads = [
        n["Node Type"]
        for n in nodes
        if n.get("Relation Name") == "jobs" and n["Node Type"] in ("Seq Scan", "Bitmap Heap Scan")
    ]
    assert backlog_reads == [], f"the claim reads the whole backlog: {kinds}"
    walks = [n for n in nodes if n["Node Type"] == "Index Scan" and n.get("Index Name") == "jobs_claim_idx"]
    assert len(walks) == 1, kinds
    assert walks[0]["Scan Direction"] == "Forward"


#: Jobs scheduled an hour ahead, enqueued before the due ones (the worst order for a walk
#: in enqueue order), and due jobs after them.
DELAYED = 5_000
DUE = 50


async def _claim_analyzed(app: Stem, limit: int) -> list[dict[str, Any]]:
    """The claim's plan nodes as it ran (EXPLAIN ANALYZE, BUFFERS) on the worker's claim
    connection, rolled back: what it read, not how long it took."""
    worker = Worker(app, WorkerSettings(queues=("default",)))
    worker._assemble()
    conn = await worker.conns.claim.get()
    params = {
        "queue": "default",
        "limit": limit,
        "worker_id": "w1",
        "token": str(uuid.uuid4()),
        "lease_seconds": 30,
        "tasks": ["t"],
    }
    try:
        async with conn.transaction(force_rollback=True):
            query = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + app.queries["job_claim"]
            cur = await conn.execute(query, params)
            row = await cur.fetchone()
    finally:
        await worker.conns.claim.discard()
        worker.executor.pool.shutdown()
    assert row is not None
    return list(_nodes(row[0][0]["Plan"]))


@pytest.mark.parametrize("statistics", ["never analyzed", "analyzed"])
async def test_claim_never_steps_over_jobs_scheduled_for_later(
    app: Stem, database_url: str, statistics: str
) -> None:
    """Inside a bucket the claim index puts due jobs first: a claim behind thousands of
    jobs scheduled for later reads its due jobs and stops, without visiting one of them."""
    app.enqueue_many([EnqueueRequest("t", countdown=3600)] * DELAYED)
    app.enqueue_many([EnqueueRequest("t")] * DUE)
    if statistics == "analyzed":
        _analyze(database_url, app.namespace)

    nodes = await _claim_analyzed(app, limit=10)

    walks = [n for n in nodes if n["Node Type"] == "Index Scan" and n.get("Index Name") == "jobs_claim_idx"]
    assert len(walks) == 1, [n["Node Type"] for n in nodes]
    walk = walks[0]
    assert "not_before" in walk.get("Index Cond", ""), walk.get("Index Cond")
    assert walk["Actual Rows"] == 10
    assert walk.get("Rows Removed by Filter", 0) == 0  # no scheduled job's row was fetched
    # A walk over the scheduled jobs' entries would read dozens of index pages.
    assert walk["Shared Hit Blocks"] + walk["Shared Read Blocks"] < 20, walk
