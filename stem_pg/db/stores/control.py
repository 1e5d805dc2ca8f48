"""The control-plane store: ``sql/control.sql``, one method per query.

``ControlStore`` is the worker's (async); ``ControlClientStore`` is the CLI's
and the application's (sync, on a connection the caller owns, so a revoke and
its NOTIFY commit together).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow, class_row
from psycopg.types.json import Jsonb

from stem_pg.db.queries import Queries

AsyncConn = psycopg.AsyncConnection[TupleRow]
SyncConn = psycopg.Connection[TupleRow]


@dataclass(frozen=True)
class RevokeRow:
    """One revoke as workers see it; ``version`` orders them."""

    version: int
    task_id: str
    reason: str | None
    terminate: bool
    expires_at: datetime


@dataclass(frozen=True)
class RevokeOutcome:
    """What a revoke did to one task id.

    ``outcome``: ``cancelled`` (was waiting, cancelled now), ``revoked`` (live:
    workers will not start it again and stop it if asked to terminate),
    ``finished`` (nothing changed), ``unknown`` (recorded: it will never start).
    """

    task_id: str
    outcome: str
    state: str | None
    worker_id: str | None
    version: int | None


@dataclass(frozen=True)
class PausedQueue:
    queue: str
    paused_at: datetime
    paused_by: str | None
    reason: str | None


class ControlStore:
    """The worker's control queries."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    async def notify(self, conn: AsyncConn, *, channel: str, payload: str) -> None:
        await conn.execute(self.q["control_notify"], {"channel": channel, "payload": payload})

    async def store_reply(
        self,
        conn: AsyncConn,
        *,
        request_id: str,
        worker_id: str,
        payload: dict[str, Any],
        channel: str,
        note: str,
    ) -> None:
        await conn.execute(
            self.q["control_reply_store"],
            {
                "request_id": request_id,
                "worker_id": worker_id,
                "payload": Jsonb(payload),
                "channel": channel,
                "note": note,
            },
        )

    async def prune_replies(self, conn: AsyncConn, *, keep: float = 600.0) -> int:
        cur = await conn.execute(self.q["control_reply_prune"], {"keep": keep})
        return cur.rowcount

    async def revokes_since(self, conn: AsyncConn, *, after: int, limit: int = 10000) -> list[RevokeRow]:
        async with conn.cursor(row_factory=class_row(RevokeRow)) as cur:
            await cur.execute(self.q["revoke_since"], {"after": after, "limit": limit})
            return await cur.fetchall()

    async def prune_revokes(self, conn: AsyncConn) -> int:
        cur = await conn.execute(self.q["revoke_prune"])
        return cur.rowcount

    async def paused(self, conn: AsyncConn) -> list[PausedQueue]:
        async with conn.cursor(row_factory=class_row(PausedQueue)) as cur:
            await cur.execute(self.q["paused_list"])
            return await cur.fetchall()


class ControlClientStore:
    """The client's control queries (CLI, ``app.revoke``)."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def notify(self, conn: SyncConn, *, channel: str, payload: str) -> None:
        conn.execute(self.q["control_notify"], {"channel": channel, "payload": payload})

    def take_reply(self, conn: SyncConn, *, request_id: str, worker_id: str) -> dict[str, Any] | None:
        row = conn.execute(
            self.q["control_reply_take"], {"request_id": request_id, "worker_id": worker_id}
        ).fetchone()
        return row[0] if row and isinstance(row[0], dict) else None

    def lock_revokes(self, conn: SyncConn) -> None:
        conn.execute(self.q["revoke_lock"], {"key": f"stem_pg:revokes:{self.q.namespace}"})

    def apply_revokes(
        self,
        conn: SyncConn,
        *,
        ids: Sequence[str],
        reason: str | None,
        terminate: bool,
        expires_in: float,
        error: str,
        result_ttl: float,
    ) -> builtins.list[RevokeOutcome]:
        with conn.cursor(row_factory=class_row(RevokeOutcome)) as cur:
            cur.execute(
                self.q["revoke_apply"],
                {
                    "ids": list(ids),
                    "reason": reason,
                    "terminate": terminate,
                    "expires_in": expires_in,
                    "error": error,
                    "result_ttl": result_ttl,
                    "done_channel": self.q.channels.done,
                },
            )
            return cur.fetchall()

    def pause(self, conn: SyncConn, *, queue: str, paused_by: str | None, reason: str | None) -> PausedQueue:
        with conn.cursor(row_factory=class_row(PausedQueue)) as cur:
            cur.execute(self.q["queue_pause"], {"queue": queue, "paused_by": paused_by, "reason": reason})
            row = cur.fetchone()
            assert row is not None
            return row

    def resume(self, conn: SyncConn, *, queue: str) -> PausedQueue | None:
        with conn.cursor(row_factory=class_row(PausedQueue)) as cur:
            cur.execute(self.q["queue_resume"], {"queue": queue, "jobs_channel": self.q.channels.jobs})
            return cur.fetchone()

    def paused(self, conn: SyncConn) -> builtins.list[PausedQueue]:
        with conn.cursor(row_factory=class_row(PausedQueue)) as cur:
            cur.execute(self.q["paused_list"])
            return cur.fetchall()
