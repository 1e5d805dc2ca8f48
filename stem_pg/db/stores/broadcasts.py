"""The broadcast fan-out store: a subscriber's side of ``sql/broadcasts.sql``, one method per query.

Publishing runs on the caller's connection (sync, async or SQLAlchemy) and
lives in ``stem_pg.db.stores.publish``; these methods are the worker's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow, class_row

from stem_pg.db.queries import Queries

AsyncConn = psycopg.AsyncConnection[TupleRow]

#: A subscriber without a heartbeat for this long is gone: nothing fans out to it.
SUBSCRIBER_LIVE_FOR = 60.0
#: Fully delivered messages stay visible in ``broadcast_deliveries`` this long.
KEEP_DELIVERED = 300.0
#: Durable channels keep their messages this long, for subscribers that join later.
KEEP_DURABLE = 24 * 3600.0


@dataclass(frozen=True)
class ClaimedBroadcast:
    """One message a subscriber took; ``attempts`` counts this run."""

    message_id: int
    task_id: str
    channel: str
    task: str
    args: dict[str, Any]
    headers: dict[str, Any]
    delivery: str
    attempts: int
    max_retries: int
    expires_at: datetime | None
    published_at: datetime


@dataclass(frozen=True)
class BroadcastAck:
    """What happened to a claimed message: a final state, or ``pending`` again after ``delay``."""

    message_id: int
    state: str
    result: str | None = None
    error: str | None = None
    delay: float = 0.0
    released: bool = False


@dataclass(frozen=True)
class SubscribeCount:
    joined: int
    dropped: int
    abandoned: int
    replayed: int


@dataclass(frozen=True)
class GcCount:
    subscriptions: int
    deliveries: int


class BroadcastStore:
    """Subscriber-side queries of one namespace, on a connection the caller owns."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    async def subscribe(self, conn: AsyncConn, *, worker_id: str, channels: Sequence[str]) -> SubscribeCount:
        async with conn.cursor(row_factory=class_row(SubscribeCount)) as cur:
            await cur.execute(
                self.q["broadcast_subscribe"], {"worker_id": worker_id, "channels": list(channels)}
            )
            row = await cur.fetchone()
            return row or SubscribeCount(0, 0, 0, 0)

    async def recover(self, conn: AsyncConn, *, worker_id: str) -> list[tuple[int, str]]:
        cur = await conn.execute(self.q["broadcast_recover"], {"worker_id": worker_id})
        return [(int(r[0]), str(r[1])) for r in await cur.fetchall()]

    async def claim(self, conn: AsyncConn, *, worker_id: str, limit: int) -> list[ClaimedBroadcast]:
        async with conn.cursor(row_factory=class_row(ClaimedBroadcast)) as cur:
            await cur.execute(self.q["broadcast_claim"], {"worker_id": worker_id, "limit": limit})
            return await cur.fetchall()

    async def ack(self, conn: AsyncConn, *, worker_id: str, acks: Sequence[BroadcastAck]) -> int:
        cur = await conn.execute(
            self.q["broadcast_ack"],
            {
                "worker_id": worker_id,
                "message_id": [a.message_id for a in acks],
                "state": [a.state for a in acks],
                "result": [a.result for a in acks],
                "error": [a.error for a in acks],
                "delay": [a.delay for a in acks],
                "released": [a.released for a in acks],
                "done_channel": self.q.channels.done,
            },
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def gc(self, conn: AsyncConn, *, live_for: float = SUBSCRIBER_LIVE_FOR) -> GcCount:
        async with conn.cursor(row_factory=class_row(GcCount)) as cur:
            await cur.execute(self.q["broadcast_gc"], {"live_for": live_for})
            row = await cur.fetchone()
            return row or GcCount(0, 0)

    async def prune(
        self,
        conn: AsyncConn,
        *,
        keep: float = KEEP_DELIVERED,
        durable_keep: float = KEEP_DURABLE,
        limit: int = 5000,
    ) -> int:
        cur = await conn.execute(
            self.q["broadcast_prune"], {"keep": keep, "durable_keep": durable_keep, "limit": limit}
        )
        return cur.rowcount
