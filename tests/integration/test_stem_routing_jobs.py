"""A Stem routing file on a real Postgres: jobs land on the queue and priority Stem would
choose, and handlers see where they were routed (``ctx.routing``: queue, priority, broadcast
channel, the routing file's ``meta``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import EnqueueRequest, Stem
from stem_pg.client.broadcasts import BroadcastResult
from stem_pg.config.routing_file import load_routing_yaml
from stem_pg.config.settings import StemConfig
from stem_pg.worker.context import TaskContext
from tests.helpers import running_worker, wait_for
from tests.routing_examples import STEM_ROUTING

Db = psycopg.Connection[tuple[Any, ...]]


@pytest.fixture
def sapp(database_url: str, namespace: str) -> Iterator[Stem]:
    stem = Stem(
        database_url, namespace=namespace, routing=load_routing_yaml(STEM_ROUTING), config=StemConfig()
    )
    yield stem
    stem.close()


def _jobs(db: Db, ns: str) -> list[tuple[Any, ...]]:
    query = sql.SQL("SELECT id, queue, priority FROM {}.jobs ORDER BY seq").format(sql.Identifier(ns))
    return db.execute(query).fetchall()


def test_jobs_land_where_stem_routes_them(sapp: Stem, db: Db) -> None:
    @sapp.task(name="billing.sync", queue="secondary")
    def sync() -> None: ...

    sapp.enqueue("reports.daily", {}, task_id="globbed", priority=0)  # list glob; override 7 -> 5
    sapp.enqueue("invoices.monthly", {}, task_id="second-glob")
    sapp.enqueue("other", {}, task_id="sent", queue="secondary", priority=1)  # queue_override -> urgent, 8
    sapp.enqueue("billing.sync", {}, task_id="task-queue")  # its task's queue counts as sent to it
    sapp.enqueue("other", {}, task_id="plain", priority=0)  # default queue, range 1..5
    sapp.enqueue_many([EnqueueRequest("reports.x", task_id="bulk", priority=9)])
    assert _jobs(db, sapp.namespace) == [
        ("globbed", "primary", 5),
        ("second-glob", "primary", 5),
        ("sent", "urgent", 8),
        ("task-queue", "urgent", 8),
        ("plain", "primary", 1),
        ("bulk", "primary", 5),
    ]


def test_handlers_see_the_routing_meta(sapp: Stem, db: Db) -> None:
    @sapp.task(name="reports.daily")
    def daily(ctx: TaskContext) -> dict[str, Any]:
        routing = ctx.routing
        return {"queue": routing.queue, "priority": routing.priority, "meta": dict(routing.meta)}

    @sapp.task(name="plain")
    def plain(ctx: TaskContext) -> list[Any]:
        return [ctx.routing.queue, ctx.routing.meta]

    @sapp.task(name="control.ping")
    def ping(ctx: TaskContext) -> list[Any]:
        routing = ctx.routing
        return [routing.queue, routing.broadcast, dict(routing.meta)]

    with running_worker(sapp, queues=("primary", "urgent"), broadcasts=("control",)):
        daily_job = sapp.enqueue("reports.daily", {})
        assert daily_job.get(timeout=10) == {
            "queue": "primary",
            "priority": 5,
            "meta": {"owner": "billing", "limits": {"rate": 10}},
        }
        # Sent to secondary, moved to urgent by the queue_override rule: urgent's meta.
        assert sapp.enqueue("plain", {}, queue="secondary").get(timeout=10) == ["urgent", {"tier": "gold"}]
        subscribers = sql.SQL("SELECT 1 FROM {}.broadcast_subscriptions").format(
            sql.Identifier(sapp.namespace)
        )
        wait_for(lambda: db.execute(subscribers).fetchall(), what="the worker's subscription")
        message = sapp.enqueue("control.ping", {})
        assert isinstance(message, BroadcastResult)
        assert list(message.get(timeout=10).values()) == [[None, "control", {"scope": "fleet"}]]
