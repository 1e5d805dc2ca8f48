"""The workers table: registration, heartbeats, listing."""

from __future__ import annotations

import builtins
import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow, class_row

from stem_pg.core.heartbeats import Beat, encode
from stem_pg.db.queries import Queries

AsyncConn = psycopg.AsyncConnection[TupleRow]


@dataclass(frozen=True)
class WorkerRow:
    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    last_heartbeat_at: datetime
    stopped_at: datetime | None
    status: str


class WorkerStore:
    def __init__(self, queries: Queries) -> None:
        self.q = queries

    async def register(
        self,
        conn: AsyncConn,
        *,
        worker_id: str,
        queues: Sequence[str],
        concurrency: int,
        tasks: Mapping[str, Mapping[str, Any]] | None = None,
        beat: Beat | None = None,
        connections: int | None = None,
    ) -> None:
        """Announce the worker; ``tasks``: each registered task's enqueue options; ``beat``
        (if given) goes out on the heartbeat topic too; ``connections``: how many the
        process may hold (``stem doctor`` adds them up)."""
        await conn.execute(
            self.q["worker_register"],
            {
                "id": worker_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "queues": list(queues),
                "concurrency": concurrency,
                "tasks": None if tasks is None else json.dumps(tasks),
                "connections": connections,
                "channel": self.q.channels.heartbeats,
                "payload": None if beat is None else encode(beat),
            },
        )

    async def heartbeat(self, conn: AsyncConn, *, beat: Beat) -> None:
        """The worker ``beat.worker`` is alive: its row, and ``beat`` on the heartbeat topic."""
        await conn.execute(self.q["worker_heartbeat"], self._beat_params(beat))

    async def stopped(self, conn: AsyncConn, *, beat: Beat) -> None:
        """The worker ``beat.worker`` stopped cleanly: its row, and ``beat`` on the topic."""
        await conn.execute(self.q["worker_stopped"], self._beat_params(beat))

    def _beat_params(self, beat: Beat) -> dict[str, str]:
        return {"id": beat.worker, "channel": self.q.channels.heartbeats, "payload": encode(beat)}

    def task_options(
        self, conn: psycopg.Connection[TupleRow], *, task: str, stale_after: float
    ) -> dict[str, Any] | None:
        """``task``'s enqueue options as the newest live worker registered them, or None."""
        params = {"task": task, "stale_after": stale_after}
        row = conn.execute(self.q["worker_task_options"], params).fetchone()
        return None if row is None else dict(row[0])

    async def prune(self, conn: AsyncConn, *, retention: float) -> int:
        """Forget workers gone (stopped, or silent) for more than ``retention`` seconds."""
        cur = await conn.execute(self.q["worker_prune"], {"retention": retention})
        return cur.rowcount

    def list(self, conn: psycopg.Connection[TupleRow], *, stale_after: float) -> builtins.list[WorkerRow]:
        with conn.cursor(row_factory=class_row(WorkerRow)) as cur:
            cur.execute(self.q["worker_list"], {"stale_after": stale_after})
            return cur.fetchall()
