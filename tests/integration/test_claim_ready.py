"""``claim_ready`` (migration 0021): the claim on a connection whose session does not plan
claims (``--connections minimal``'s shared one, a transaction pooler's) is one statement
that brings its own plan, claims what ``job_claim`` claims, and stays a durable commit."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import pq, sql

from stem_pg.client.app import EnqueueRequest, Stem
from stem_pg.db.connect import connect_async
from stem_pg.db.stores.jobs import JobStore
from stem_pg.db.stores.rows import ClaimedJob


def _claim_args(**extra: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        queue="default", limit=10, worker_id="w1", token=str(uuid.uuid4()), lease_seconds=60
    )
    return {**args, **extra}


def _comparable(jobs: list[ClaimedJob]) -> list[tuple[Any, ...]]:
    return [job._replace(waited=0.0) for job in jobs]


async def test_a_shared_connections_claim_is_one_statement(app: Stem, database_url: str) -> None:
    """BEGIN, SET LOCAL, the claim and COMMIT were four statements the server and the event
    loop each took in turn (~1 ms on an idle worker); now one Bind, one Sync."""
    app.enqueue("t")
    jobs = JobStore(app.queries, result_ttl=60)
    conn = await connect_async(database_url, role="test-claim", shared=True)
    with tempfile.TemporaryFile("w+") as trace:
        try:
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
            claimed = await jobs.claim(conn, **_claim_args())
            conn.pgconn.untrace()
        finally:
            await conn.close()
        trace.seek(0)
        sent = [line.split("\t")[2] for line in trace.read().splitlines() if line.startswith("F\t")]
    assert len(claimed) == 1
    assert sent.count("Bind") == 1, sent
    assert sent.count("Sync") == 1, sent


async def test_claim_ready_claims_what_job_claim_claims(app: Stem, database_url: str) -> None:
    """Same jobs, same order (priority, then due order), same rows; delayed jobs, tasks the
    worker does not run and a paused queue left alone."""
    app.enqueue_many(
        [
            EnqueueRequest("t", {"n": 1}),
            EnqueueRequest("t", priority=5),
            EnqueueRequest("other"),
            EnqueueRequest("t", countdown=3600),
            EnqueueRequest("t", {"n": 2}, headers={"x": "y"}),
            EnqueueRequest("u", priority=5),
        ]
    )
    jobs = JobStore(app.queries, result_ttl=60)
    plain = await connect_async(database_url, role="test-claim")
    shared = await connect_async(database_url, role="test-claim", shared=True)
    try:
        await jobs.plan_claims(plain)
        args = _claim_args(tasks=["t", "u"])
        async with plain.transaction(force_rollback=True):
            expected = await jobs.claim(plain, **args)
        assert [(j.task, j.priority) for j in expected] == [("t", 5), ("u", 5), ("t", 0), ("t", 0)]
        assert expected[2].args == {"n": 1} and expected[3].headers == {"x": "y"}
        assert _comparable(await jobs.claim(shared, **args)) == _comparable(expected)
        app.enqueue("t", queue="held")
        with psycopg.connect(database_url, autocommit=True) as admin:
            table = sql.Identifier(app.namespace, "paused_queues")
            admin.execute(sql.SQL("INSERT INTO {} (queue) VALUES ('held')").format(table))
        assert await jobs.claim(shared, **_claim_args(queue="held")) == []
    finally:
        await plain.close()
        await shared.close()


async def test_claim_ready_commits_durably_where_the_session_does_not(app: Stem, database_url: str) -> None:
    app.enqueue("t")
    conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    try:
        await conn.execute("SET synchronous_commit = off")
        async with conn.transaction(force_rollback=True):
            cur = await conn.execute(app.queries["job_claim_ready"], _claim_args(tasks=None))
            assert len(await cur.fetchall()) == 1
            setting = await (await conn.execute("SHOW synchronous_commit")).fetchone()
        assert setting == ("on",)
    finally:
        await conn.close()


async def test_claim_ready_walks_the_claim_index_of_a_backlog_never_analyzed(
    app: Stem, database_url: str
) -> None:
    """The plan inside the function (auto_explain, as notices): the walk of jobs_claim_idx,
    never a read and sort of the backlog, where a planner that does not know the table
    prefers the sort (tests/integration/test_claim_plan.py)."""
    if not os.path.exists(os.path.join(_libdir(database_url), "auto_explain.so")):
        pytest.skip("auto_explain is not installed on this server")
    app.enqueue_many([EnqueueRequest("t", {"pad": "x" * 1000})] * 20_000)
    conn = await connect_async(database_url, role="test-claim", shared=True)
    plans: list[dict[str, Any]] = []
    conn.add_notice_handler(lambda d: plans.append(json.loads((d.message_primary or "").split("\n", 1)[1])))
    try:
        for setting in (
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_nested_statements = on",
            "SET auto_explain.log_format = json",
            "SET auto_explain.log_level = notice",
        ):
            await conn.execute(setting)
        async with conn.transaction(force_rollback=True):
            claimed = await JobStore(app.queries, result_ttl=60).claim(conn, **_claim_args(tasks=["t"]))
    finally:
        await conn.close()
    assert len(claimed) == 10
    inner = [p["Plan"] for p in plans if "jobs_claim_idx" in json.dumps(p) or "jobs" in p["Query Text"]]
    nodes = [n for plan in inner for n in _nodes(plan)]
    kinds = [n["Node Type"] for n in nodes]
    assert not [k for k in kinds if "Sort" in k], kinds
    assert any(n.get("Index Name") == "jobs_claim_idx" for n in nodes), kinds
    assert not [n for n in nodes if n.get("Relation Name") == "jobs" and n["Node Type"] == "Seq Scan"], kinds


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _nodes(child))]


def _libdir(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT setting FROM pg_config() WHERE name = 'PKGLIBDIR'").fetchone()
    return str(row[0]) if row else ""
