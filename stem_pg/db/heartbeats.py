"""Listening to the heartbeat topic: every worker's beats as they happen (``core.heartbeats``).

LISTEN first with ``listen_heartbeats``, then read the ``workers`` table (``WorkerStore.list``)
for the state so far, then take beats as they come with ``heartbeats`` (or ``aheartbeats`` on an
AsyncConnection). A beat is a live hint; when none comes for a while (no worker alive, or a
pooler in between that drops NOTIFY), read the table again: it is the record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
from psycopg.sql import SQL, Identifier

from stem_pg.core.heartbeats import Beat, decode
from stem_pg.core.namespaces import Channels


def listen_heartbeats(conn: psycopg.Connection[Any], namespace: str) -> None:
    """Make ``conn`` (autocommit) LISTEN on the namespace's heartbeat channel."""
    conn.execute(SQL("LISTEN {}").format(Identifier(Channels(namespace).heartbeats)))


async def alisten_heartbeats(conn: psycopg.AsyncConnection[Any], namespace: str) -> None:
    """The async twin of ``listen_heartbeats``."""
    await conn.execute(SQL("LISTEN {}").format(Identifier(Channels(namespace).heartbeats)))


def heartbeats(conn: psycopg.Connection[Any], *, timeout: float) -> Iterator[Beat]:
    """The beats ``conn`` hears until ``timeout`` seconds pass (payloads that are not beats
    are skipped). ``conn`` must LISTEN already (``listen_heartbeats``)."""
    for note in conn.notifies(timeout=timeout):
        beat = decode(note.payload)
        if beat is not None:
            yield beat


async def aheartbeats(conn: psycopg.AsyncConnection[Any], *, timeout: float) -> AsyncIterator[Beat]:
    """The async twin of ``heartbeats``."""
    async for note in conn.notifies(timeout=timeout):
        beat = decode(note.payload)
        if beat is not None:
            yield beat
