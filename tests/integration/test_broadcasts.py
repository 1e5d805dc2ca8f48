"""Broadcast fan-out on a real Postgres: publishing, subscriptions, redelivery, gone subscribers,
pruning. Store methods are driven directly on rows we build; workers run in threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import EnqueueRequest, Stem
from stem_pg.client.broadcasts import BroadcastResult
from stem_pg.config.routing_file import load_routing_yaml
from stem_pg.config.settings import StemConfig
from stem_pg.core.errors import RoutingConfigError, TaskError
from stem_pg.db.stores.broadcasts import BroadcastAck, BroadcastStore
from stem_pg.db.stores.workers import WorkerStore
from stem_pg.worker.context import TaskContext
from tests.helpers import running_worker, wait_for

Db = psycopg.Connection[tuple[Any, ...]]
T = TypeVar("T")

ROUTING = """
broadcasts:
  ctl: {delivery: at-least-once}
  news: {delivery: at-most-once}
  history: {durability: durable}
routes:
  - match: {task: "ctl.*"}
    target: {type: broadcast, name: ctl}
"""


@pytest.fixture
def bapp(database_url: str, namespace: str) -> Iterator[Stem]:
    stem = Stem(database_url, namespace=namespace, routing=load_routing_yaml(ROUTING), config=StemConfig())
    yield stem
    stem.close()


def _sql(db: Db, ns: str, text: str, *params: Any) -> list[tuple[Any, ...]]:
    cur = db.execute(sql.SQL(text).format(ns=sql.Identifier(ns)), params)
    return cur.fetchall() if cur.description else []


def _on(database_url: str, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
    async def main() -> T:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            return await work(conn)

    return asyncio.run(main())


def _subscriber(bapp: Stem, database_url: str, worker_id: str, channels: list[str]) -> None:
    async def work(conn: psycopg.AsyncConnection[Any]) -> None:
        await WorkerStore(bapp.queries).register(conn, worker_id=worker_id, queues=["default"], concurrency=1)
        await BroadcastStore(bapp.queries).subscribe(conn, worker_id=worker_id, channels=channels)

    _on(database_url, work)


def _states(db: Db, ns: str) -> list[tuple[Any, ...]]:
    return _sql(
        db, ns, "SELECT task, worker_id, state FROM {ns}.broadcast_deliveries ORDER BY task, worker_id"
    )


def test_a_message_fans_out_to_live_subscribers_of_its_channel_only(
    bapp: Stem, database_url: str, db: Db
) -> None:
    for worker_id, channels in (("w1", ["ctl"]), ("w2", ["ctl", "news"]), ("w3", ["news"])):
        _subscriber(bapp, database_url, worker_id, channels)
    _sql(db, bapp.namespace, "UPDATE {ns}.workers SET stopped_at = now() WHERE id = 'w2'")
    _subscriber(bapp, database_url, "w4", ["ctl"])
    _sql(
        db,
        bapp.namespace,
        "UPDATE {ns}.workers SET last_heartbeat_at = now() - interval '1 hour' WHERE id = 'w4'",
    )

    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(bapp.queries.channels.broadcasts)))
        routed = bapp.enqueue("ctl.reload", {"why": "test"})
        assert [n.payload for n in listener.notifies(timeout=2, stop_after=1)] == ["ctl"]
    direct = bapp.broadcast("news", "news.flash", {"n": 1})
    assert isinstance(routed, BroadcastResult) and routed.subscribers == 1
    assert direct.subscribers == 1
    assert _states(db, bapp.namespace) == [("ctl.reload", "w1", "pending"), ("news.flash", "w3", "pending")]
    again = bapp.broadcast("news", "news.flash", {"n": 1}, task_id=direct.id)
    assert again.subscribers is None, "a published task id is left alone"


def test_late_subscribers_start_empty_unless_the_channel_is_durable(
    bapp: Stem, database_url: str, db: Db
) -> None:
    bapp.broadcast("ctl", "ctl.old")
    bapp.broadcast("history", "history.old")
    _subscriber(bapp, database_url, "late", ["ctl", "history"])
    assert _states(db, bapp.namespace) == [("history.old", "late", "pending")]
    bapp.broadcast("ctl", "ctl.new")
    assert ("ctl.new", "late", "pending") in _states(db, bapp.namespace)


def test_unacked_at_least_once_messages_come_back_and_at_most_once_do_not(
    bapp: Stem, database_url: str, db: Db
) -> None:
    _subscriber(bapp, database_url, "w1", ["ctl", "news"])
    bapp.broadcast("ctl", "ctl.x")
    bapp.broadcast("news", "news.x")
    store = BroadcastStore(bapp.queries)

    async def crash_and_restart(conn: psycopg.AsyncConnection[Any]) -> list[tuple[int, str]]:
        claimed = await store.claim(conn, worker_id="w1", limit=10)
        assert sorted((c.task, c.delivery) for c in claimed) == [
            ("ctl.x", "at-least-once"),
            ("news.x", "at-most-once"),
        ]
        return await store.recover(conn, worker_id="w1")

    _on(database_url, crash_and_restart)
    assert _states(db, bapp.namespace) == [("ctl.x", "w1", "pending"), ("news.x", "w1", "failed")]

    async def run_and_ack(conn: psycopg.AsyncConnection[Any]) -> int:
        (again,) = await store.claim(conn, worker_id="w1", limit=10)
        assert (again.task, again.attempts) == ("ctl.x", 2)
        return await store.ack(conn, worker_id="w1", acks=[BroadcastAck(again.message_id, "succeeded", "1")])

    assert _on(database_url, run_and_ack) == 1
    assert _states(db, bapp.namespace)[0] == ("ctl.x", "w1", "succeeded")


def test_gone_subscribers_stop_holding_messages_back_and_delivered_ones_are_pruned(
    bapp: Stem, database_url: str, db: Db
) -> None:
    _subscriber(bapp, database_url, "alive", ["ctl"])
    _subscriber(bapp, database_url, "dying", ["ctl"])
    message = bapp.broadcast("ctl", "ctl.x")
    store = BroadcastStore(bapp.queries)

    async def deliver_to_the_live_one(conn: psycopg.AsyncConnection[Any]) -> None:
        (claimed,) = await store.claim(conn, worker_id="alive", limit=10)
        await store.ack(conn, worker_id="alive", acks=[BroadcastAck(claimed.message_id, "succeeded")])

    _on(database_url, deliver_to_the_live_one)
    assert _on(database_url, lambda conn: store.prune(conn, keep=0)) == 0, "'dying' has not got it yet"
    _sql(
        db,
        bapp.namespace,
        "UPDATE {ns}.workers SET last_heartbeat_at = now() - interval '1 hour' WHERE id = 'dying'",
    )
    gc = _on(database_url, lambda conn: store.gc(conn))
    assert (gc.subscriptions, gc.deliveries) == (1, 1)
    assert ("ctl.x", "dying", "cancelled") in _states(db, bapp.namespace)
    assert _on(database_url, lambda conn: store.prune(conn, keep=3600)) == 0, "kept for a while"
    assert _on(database_url, lambda conn: store.prune(conn, keep=0)) == 1
    assert _states(db, bapp.namespace) == []
    assert message.deliveries() == []


def test_workers_run_broadcasts_through_the_task_registry(bapp: Stem, db: Db) -> None:
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    @bapp.task(name="ctl.hello")
    def hello(ctx: TaskContext, who: str) -> str:
        with lock:
            seen.append((ctx.worker_id, who))
        return f"hello {who}"

    @bapp.task(name="plain")
    def plain() -> str:
        return "queued"

    with running_worker(bapp, broadcasts=("ctl",)) as one, running_worker(bapp, broadcasts=("ctl",)) as two:
        wait_for(lambda: len(_sql(db, bapp.namespace, "SELECT 1 FROM {ns}.broadcast_subscriptions")) == 2)
        mixed = bapp.enqueue_many([EnqueueRequest("plain"), ("ctl.hello", {"who": "all"})])
        assert isinstance(mixed[1], BroadcastResult)
        assert mixed[1].get(timeout=10) == {one.id: "hello all", two.id: "hello all"}
        assert mixed[0].get(timeout=10) == "queued"
    assert sorted(seen) == sorted([(one.id, "all"), (two.id, "all")])


def test_a_publish_on_the_callers_connection_exists_once_it_commits(
    bapp: Stem, database_url: str, db: Db
) -> None:
    """psycopg and SQLAlchemy connections alike; with jobs in the same batch, the jobs go in
    first and the messages after (both twins), all in the caller's transaction."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    _subscriber(bapp, database_url, "w1", ["ctl", "news"])
    with psycopg.connect(database_url) as conn:
        handle = bapp.broadcast("news", "news.tx", connection=conn)
        assert handle.subscribers == 1
        assert _states(db, bapp.namespace) == []  # not before the commit
        conn.commit()
    assert _states(db, bapp.namespace) == [("news.tx", "w1", "pending")]
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with Session(engine) as session:
            rolled_back = bapp.enqueue_many([("job", {}), ("ctl.gone", {})], connection=session)
            assert isinstance(rolled_back[1], BroadcastResult) and rolled_back[1].subscribers == 1
            session.rollback()
        with Session(engine) as session, session.begin():
            kept = bapp.broadcast("ctl", "ctl.sa", connection=session)
    finally:
        engine.dispose()
    assert kept.subscribers == 1
    assert [task for task, _, _ in _states(db, bapp.namespace)] == ["ctl.sa", "news.tx"]
    assert _sql(db, bapp.namespace, "SELECT task FROM {ns}.jobs") == []


def test_async_enqueue_many_publishes_after_the_jobs_on_the_callers_connection(
    bapp: Stem, database_url: str, db: Db
) -> None:
    _subscriber(bapp, database_url, "w1", ["ctl"])

    async def enqueue(conn: psycopg.AsyncConnection[Any]) -> list[Any]:
        handles = await bapp.aenqueue_many([("job", {}), ("ctl.async", {})], connection=conn)
        await conn.commit()
        return handles

    async def on_a_transaction() -> list[Any]:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            return await enqueue(conn)

    handles = asyncio.run(on_a_transaction())
    assert isinstance(handles[1], BroadcastResult) and handles[1].subscribers == 1
    assert not isinstance(handles[0], BroadcastResult)
    assert _states(db, bapp.namespace) == [("ctl.async", "w1", "pending")]
    assert _sql(db, bapp.namespace, "SELECT id FROM {ns}.jobs") == [(handles[0].id,)]
    with psycopg.connect(database_url) as sync_conn, pytest.raises(TaskError, match="AsyncConnection"):
        asyncio.run(enqueue(sync_conn))  # type: ignore[arg-type]
    assert len(_states(db, bapp.namespace)) == 1, "a refused connection publishes nothing"


def test_broadcast_requests_are_checked(bapp: Stem) -> None:
    with pytest.raises(RoutingConfigError, match="unknown broadcast 'nope'"):
        bapp.broadcast("nope", "x")
    with pytest.raises(TaskError, match="not both"):
        bapp.broadcast("ctl", "x", countdown=1, eta=datetime.now(UTC))
    with pytest.raises(TaskError, match="plan\\(\\) builds queue jobs only"):
        bapp.plan(EnqueueRequest("ctl.x"))
