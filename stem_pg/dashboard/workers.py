"""The workers page's one source of worker data: the ``workers`` table (registration and
heartbeats), the running jobs and the last hour's results. Switch the source here (for
instance to a heartbeat topic) and every page follows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stem_pg.client.control import ALIVE_WITHIN
from stem_pg.db.stores.dashboard import Conn, DashboardStore
from stem_pg.db.stores.dashboard_rows import RunningJob
from stem_pg.db.stores.workers import WorkerStore


@dataclass(frozen=True)
class WorkerView:
    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    last_heartbeat_at: datetime
    status: str
    running: list[RunningJob]
    processed: int
    failed: int


def workers(store: DashboardStore, conn: Conn) -> list[WorkerView]:
    """Every known worker (alive, stale or gone) with its in-flight jobs and hourly counts."""
    rows = WorkerStore(store.q).list(conn, stale_after=ALIVE_WITHIN)
    running: dict[str | None, list[RunningJob]] = {}
    for job in store.running(conn):
        running.setdefault(job.worker_id, []).append(job)
    counts = {c.worker_id: c for c in store.worker_counts(conn)}
    return [
        WorkerView(
            id=w.id,
            host=w.host,
            pid=w.pid,
            queues=list(w.queues),
            concurrency=w.concurrency,
            started_at=w.started_at,
            last_heartbeat_at=w.last_heartbeat_at,
            status=w.status,
            running=running.get(w.id, []),
            processed=counts[w.id].processed if w.id in counts else 0,
            failed=counts[w.id].failed if w.id in counts else 0,
        )
        for w in rows
    ]
