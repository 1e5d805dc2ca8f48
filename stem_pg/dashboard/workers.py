"""The one place worker data comes together: the ``workers`` table (the record: who
registered, alive, stale or gone), each worker's latest beat on the heartbeat topic (live:
in-flight count, processed and failed since it started, uptime), the running jobs (what is
in flight, for how long) and the last hour's results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from stem_pg.client.control import ALIVE_WITHIN
from stem_pg.core.heartbeats import Beat
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
    processed_1h: int
    failed_1h: int
    #: The latest heartbeat heard on the topic since the dashboard started listening, if any.
    beat: Beat | None


def workers(store: DashboardStore, conn: Conn, beats: Mapping[str, Beat]) -> list[WorkerView]:
    """Every known worker (alive, stale or gone) with its in-flight jobs, hourly counts and
    latest heartbeat."""
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
            processed_1h=counts[w.id].processed if w.id in counts else 0,
            failed_1h=counts[w.id].failed if w.id in counts else 0,
            beat=beats.get(w.id),
        )
        for w in rows
    ]
