"""The control-plane store: ``sql/control.sql``, one method per query.

``ControlStore`` is the worker's (async); ``ControlClientStore`` is the CLI's
and the application's (sync, on a connection the caller owns, so a revoke, its
command row and the wake-up NOTIFY commit together).
"""

from __future__ import annotations

import builtins
import functools
import json
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
class CommandRow:
    """One row of ``control_commands``: what workers act on (``targets`` empty: all)."""

    id: int
    request_id: str
    command: str
    args: dict[str, Any]
    targets: list[str]
    wants_reply: bool


@dataclass(frozen=True)
class StoredReply:
    """One worker's reply to a command, as read back by the asker."""

    worker_id: str
    payload: dict[str, Any]


#: Replies may hold values JSON does not know (timestamps): stored as their text.
_to_json = functools.partial(json.dumps, default=str)


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

    async def command_cursor(self, conn: AsyncConn) -> int:
        """The newest command id (a starting worker acts only on later ones)."""
        cur = await conn.execute(self.q["control_command_cursor"])
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def commands_since(self, conn: AsyncConn, *, after: int, limit: int = 1000) -> list[CommandRow]:
        async with conn.cursor(row_factory=class_row(CommandRow)) as cur:
            await cur.execute(self.q["control_command_since"], {"after": after, "limit": limit})
            return await cur.fetchall()

    async def prune_commands(self, conn: AsyncConn, *, keep: float = 600.0) -> int:
        cur = await conn.execute(self.q["control_command_prune"], {"keep": keep})
        return cur.rowcount

    async def store_reply(
        self,
        conn: AsyncConn,
        *,
        request_id: str,
        worker_id: str,
        payload: dict[str, Any],
        channel: str,
    ) -> None:
        """Record a reply row and hint the asker on ``channel`` (derived from ``request_id``)."""
        await conn.execute(
            self.q["control_reply_store"],
            {
                "request_id": request_id,
                "worker_id": worker_id,
                "payload": Jsonb(payload, dumps=_to_json),
                "channel": channel,
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

    def insert_command(
        self,
        conn: SyncConn,
        *,
        request_id: str,
        command: str,
        args: dict[str, Any],
        targets: Sequence[str],
        wants_reply: bool,
    ) -> None:
        """Record a command (call inside a transaction: the id lock holds until commit)."""
        conn.execute(self.q["control_command_lock"], {"key": f"stem_pg:control:{self.q.namespace}"})
        conn.execute(
            self.q["control_command_insert"],
            {
                "request_id": request_id,
                "command": command,
                "args": Jsonb(args),
                "targets": list(targets),
                "wants_reply": wants_reply,
            },
        )

    def take_replies(self, conn: SyncConn, *, request_id: str) -> builtins.list[StoredReply]:
        """The replies to ``request_id`` that arrived since the last call (read once)."""
        with conn.cursor(row_factory=class_row(StoredReply)) as cur:
            cur.execute(self.q["control_reply_take"], {"request_id": request_id})
            return cur.fetchall()

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
