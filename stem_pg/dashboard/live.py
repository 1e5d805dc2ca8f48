"""Live updates: one LISTEN connection per namespace feeds every open page's event stream.

Each notification on the namespace's channels (jobs enqueued, jobs finished, control,
schedules, broadcasts) bumps a version; every stream sends a ``refresh`` event for it,
at most one per ``MIN_GAP``. A worker's heartbeat (the heartbeat topic) is kept as that
worker's latest ``Beat`` and sent as a ``beat`` event, which only the workers page follows.
Without notifications a stream still sends a ``refresh`` every ``POLL_EVERY`` seconds, so a
lost notification or a dropped listener (while it reconnects) costs latency, never a stale
page. On a hot standby (a read replica), which refuses LISTEN, the feed says so once and
pages poll; it checks every ``STANDBY_RECHECK`` seconds whether the server was promoted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import psycopg
from psycopg.sql import SQL, Identifier

from stem_pg.core.heartbeats import Beat, decode
from stem_pg.core.namespaces import Channels
from stem_pg.db.connect import connect_async
from stem_pg.db.listen import notifications
from stem_pg.db.stores.catalog import AsyncCatalogStore

log = logging.getLogger(__name__)

POLL_EVERY = 5.0
MIN_GAP = 1.0  # an overview reads the last hour of results: at most one refresh a second
RECONNECT_AFTER = 2.0
STANDBY_RECHECK = 60.0  # a feed on a standby: how often to check whether it was promoted


def channels_of(namespace: str) -> list[str]:
    channels = Channels(namespace)
    return [
        channels.jobs,
        channels.done,
        channels.control,
        channels.schedules,
        channels.broadcasts,
        channels.heartbeats,
    ]


class Feed:
    """The notifications of one namespace, as a version number streams wait on."""

    def __init__(self, url: str, namespace: str) -> None:
        self.url = url
        self.namespace = namespace
        self.version = 0
        self.beat_version = 0
        #: The latest heartbeat of each worker heard since the feed started, by worker id.
        self.beats: dict[str, Beat] = {}
        self.listening = False
        #: The server is a standby (in recovery): no LISTEN there, pages poll.
        self.standby = False
        self.heartbeats = Channels(namespace).heartbeats
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def bump(self, *, beat: bool = False) -> None:
        if beat:
            self.beat_version += 1
        else:
            self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def heard(self, note: psycopg.Notify) -> None:
        if note.channel != self.heartbeats:
            self.bump()
            return
        beat = decode(note.payload)
        if beat is not None:
            self.beats[beat.worker] = beat
            self.bump(beat=True)

    async def changes(self) -> AsyncIterator[str]:
        """``refresh`` each time data changed (or ``POLL_EVERY`` passed), ``beat`` when only
        heartbeats came, for one stream; what lands during the ``MIN_GAP`` pause after each
        is sent next, never lost."""
        sent, beats = self.version, self.beat_version
        while True:
            changed = self._changed
            if (self.version, self.beat_version) == (sent, beats):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_EVERY):  # not wait_for: it can drop a cancel on 3.11
                        await changed.wait()
            quiet = self.version == sent and self.beat_version != beats
            sent, beats = self.version, self.beat_version
            yield "beat" if quiet else "refresh"
            await asyncio.sleep(MIN_GAP)

    async def _listen(self) -> None:
        while True:
            try:
                await self._listen_once()
            except (psycopg.Error, OSError) as exc:
                log.warning("dashboard: listening on %s failed (%s); polling meanwhile", self.namespace, exc)
            except Exception as exc:  # the feed must outlive any one failure; pages poll meanwhile
                log.warning("dashboard: live feed of %s stopped: %r", self.namespace, exc)
            await asyncio.sleep(STANDBY_RECHECK if self.standby else RECONNECT_AFTER)

    async def _listen_once(self) -> None:
        """Follow the notifications until the connection fails; on a standby, return at once
        (asking it to LISTEN would only log an error on the server each time)."""
        conn = await connect_async(self.url, role="dashboard")
        try:
            standby, self.standby = self.standby, await AsyncCatalogStore().in_recovery(conn)
            if self.standby:
                if not standby:
                    log.warning(
                        "dashboard: the database is a standby (in recovery), which cannot LISTEN:"
                        " pages of %s are polling every %.0f s instead of updating live",
                        self.namespace,
                        POLL_EVERY,
                    )
                return
            if standby:
                log.warning(
                    "dashboard: the database accepts LISTEN again: pages of %s update live", self.namespace
                )
            for channel in channels_of(self.namespace):
                await conn.execute(SQL("LISTEN {}").format(Identifier(channel)))
            self.listening = True
            self.bump()  # what changed while nobody listened
            async for note in notifications(conn):
                self.heard(note)
        finally:
            self.listening = False
            await conn.close()


class Feeds:
    """The feed of each namespace a page was opened on, started on first use. ``url`` is
    where they LISTEN; None (a transaction pooler and no direct URL): nowhere, and every
    page polls."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._feeds: dict[str, Feed] = {}

    def of(self, namespace: str) -> Feed:
        feed = self._feeds.get(namespace)
        if feed is None:
            feed = self._feeds[namespace] = Feed(self.url or "", namespace)
        if self.url is not None:
            feed.start()
        return feed

    def version_of(self, namespace: str) -> int | None:
        """The version of the namespace's feed while it listens (None: no feed, or not
        listening now, so changes may go unheard)."""
        feed = self._feeds.get(namespace)
        return feed.version if feed is not None and feed.listening else None

    async def stop(self) -> None:
        for feed in self._feeds.values():
            await feed.stop()


async def event_stream(feed: Feed) -> AsyncIterator[str]:
    """Server-sent events: ``refresh`` whenever the page should reload its data, ``beat`` when a
    worker's heartbeat came (the data is the feed's versions)."""
    yield "retry: 2000\n\n"
    async for event in feed.changes():
        yield f"event: {event}\ndata: {feed.version}.{feed.beat_version}\n\n"
