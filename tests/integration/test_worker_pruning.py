"""Workers gone for longer than ``worker_retention`` leave the workers table: driven by the
maintenance pass's run_once on rows we build with old timestamps (no sleeping)."""

from __future__ import annotations

import asyncio

import psycopg
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.db.stores.jobs import JobStore
from stem_pg.db.stores.workers import WorkerStore
from stem_pg.worker import Worker
from stem_pg.worker.maintenance import Maintenance
from stem_pg.worker.settings import WorkerSettings

DAY = 24 * 3600.0

# id -> (days since the last heartbeat, stopped then?)
ROWS = {
    "stopped-8d": (8, True),
    "stopped-2d": (2, True),
    "silent-8d": (8, False),  # crashed long ago: never stopped cleanly
    "alive": (0, False),
}


async def _build(conn: psycopg.AsyncConnection, namespace: str) -> None:
    for worker_id, (days, stopped) in ROWS.items():
        await conn.execute(
            sql.SQL(
                "INSERT INTO {}.workers (id, host, pid, queues, concurrency, started_at,"
                " last_heartbeat_at, stopped_at)"
                " VALUES (%(id)s, 'h', 1, '{{default}}', 1, now() - make_interval(days => %(days)s + 1),"
                " now() - make_interval(days => %(days)s),"
                " CASE WHEN %(stopped)s THEN now() - make_interval(days => %(days)s) END)"
            ).format(sql.Identifier(namespace)),
            {"id": worker_id, "days": days, "stopped": stopped},
        )


async def _ids(conn: psycopg.AsyncConnection, namespace: str) -> list[str]:
    cur = await conn.execute(
        sql.SQL("SELECT id FROM {}.workers ORDER BY id").format(sql.Identifier(namespace))
    )
    return [row[0] for row in await cur.fetchall()]


async def test_workers_gone_longer_than_the_retention_are_pruned(app: Stem, database_url: str) -> None:
    ticks = iter([0.0, 10.0, 1000.0])
    settings = WorkerSettings(queues=("default",), prune_interval=60)
    maintenance = Maintenance(
        JobStore(app.queries, result_ttl=60),
        settings,
        workers=WorkerStore(app.queries),
        clock=lambda: next(ticks),
    )
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await _build(conn, app.namespace)
        assert (await maintenance.run_once(conn)).workers_pruned == 0  # not time to prune yet
        report = await maintenance.run_once(conn)
        assert report.workers_pruned == 2
        assert await _ids(conn, app.namespace) == ["alive", "stopped-2d"]

        shorter = Maintenance(
            JobStore(app.queries, result_ttl=60),
            WorkerSettings(queues=("default",), prune_interval=60, worker_retention=DAY),
            workers=WorkerStore(app.queries),
            clock=iter([0.0, 100.0]).__next__,
        )
        assert (await shorter.run_once(conn)).workers_pruned == 1
        assert await _ids(conn, app.namespace) == ["alive"]


async def test_the_workers_own_maintenance_prunes_gone_workers(app: Stem, database_url: str) -> None:
    worker = Worker(app, WorkerSettings(queues=("default",), prune_interval=0.001))
    worker._assemble()
    await asyncio.sleep(0.01)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await _build(conn, app.namespace)
        report = await worker.maintenance.run_once(conn)
        assert report.workers_pruned == 2
        assert await _ids(conn, app.namespace) == ["alive", "stopped-2d"]
