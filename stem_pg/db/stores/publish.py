"""The publisher's side of ``sql/broadcasts.sql``: publish a message, read its deliveries.

``PublishStore`` runs on a psycopg Connection or, for a publish inside the
application's transaction, on a SQLAlchemy Connection/Session;
``AsyncPublishStore`` on a psycopg AsyncConnection. The subscriber's side is
``stem_pg.db.stores.broadcasts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow, class_row

from stem_pg.core.planning import BroadcastSpec
from stem_pg.db.queries import Queries
from stem_pg.db.stores.broadcasts import SUBSCRIBER_LIVE_FOR
from stem_pg.db.stores.driver import fetch_one

Conn = psycopg.Connection[Any]
AsyncConn = psycopg.AsyncConnection[TupleRow]


@dataclass(frozen=True)
class Published:
    """A message that was written: ``subscribers`` is how many live workers it fanned out to."""

    message_id: int
    subscribers: int
    notified: object = None


@dataclass(frozen=True)
class Delivery:
    """One row of the ``broadcast_deliveries`` view: a message as one subscriber handled it."""

    message_id: int
    task_id: str
    channel: str
    task: str
    delivery: str
    worker_id: str
    state: str
    attempts: int
    published_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    result: Any


def _params(queries: Queries, spec: BroadcastSpec) -> dict[str, Any]:
    return {
        "task_id": spec.task_id,
        "channel": spec.channel,
        "task": spec.task,
        "args": spec.args,
        "headers": spec.headers,
        "delivery": spec.delivery,
        "durable": spec.durable,
        "max_retries": spec.max_retries,
        "eta": spec.eta,
        "countdown": spec.countdown,
        "expires_at": spec.expires_at,
        "expires_in": spec.expires_in,
        "live_for": SUBSCRIBER_LIVE_FOR,
        "wake_channel": queries.channels.broadcasts,
    }


class PublishStore:
    """Publisher queries of one namespace on a synchronous connection the caller owns."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def publish(self, conn: Any, *, spec: BroadcastSpec) -> Published | None:
        """Write one message and fan it out (``broadcast_publish``); None if its task id
        was published before (left alone)."""
        return fetch_one(conn, self.q["broadcast_publish"], _params(self.q, spec), Published)

    def deliveries(self, conn: Conn, *, task_id: str) -> list[Delivery]:
        """Each subscriber's delivery of one message (``broadcast_deliveries_of``)."""
        with conn.cursor(row_factory=class_row(Delivery)) as cur:
            cur.execute(self.q["broadcast_deliveries_of"], {"task_id": task_id})
            return cur.fetchall()


class AsyncPublishStore:
    """``publish`` on an asynchronous psycopg connection."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    async def publish(self, conn: AsyncConn, *, spec: BroadcastSpec) -> Published | None:
        async with conn.cursor(row_factory=class_row(Published)) as cur:
            await cur.execute(self.q["broadcast_publish"], _params(self.q, spec))
            return await cur.fetchone()
