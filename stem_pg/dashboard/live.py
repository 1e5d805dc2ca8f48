"""Live updates: one LISTEN connection per namespace feeds every open page's event stream.

Each notification on the namespace's channels (jobs enqueued, jobs finished, control,
schedules, broadcasts) bumps a version; every stream sends a ``refresh`` event for it,
at most one per ``MIN_GAP``. Without notifications a stream still sends one every
``POLL_EVERY`` seconds, so a lost notification or a dropped listener (while it reconnects)
costs latency, never a stale page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import psycopg
from psycopg.sql import SQL, Identifier

from stem_pg.core.namespaces import Channels
from stem_pg.db.connect import connect_async
from stem_pg.db.listen import notifications

log = logging.getLogger(__name__)

POLL_EVERY = 5.0
MIN_GAP = 1.0  # an overview reads the last hour of results: at most one refresh a second
RECONNECT_AFTER = 2.0


def channels_of(namespace: str) -> list[str]:
    channels = Channels(namespace)
    return [channels.jobs, channels.done, channels.control, channels.schedules, channels.broadcasts]


class Feed:
    """The notifications of one namespace, as a version number streams wait on."""

    def __init__(self, url: str, namespace: str) -> None:
        self.url = url
        self.namespace = namespace
        self.version = 0
        self.listening = False
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

    def bump(self) -> None:
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def changes(self) -> AsyncIterator[int]:
        """A version each time something changed (or ``POLL_EVERY`` passed), for one stream;
        changes during the ``MIN_GAP`` pause after each are sent together, never lost."""
        sent = self.version
        while True:
            changed = self._changed
            if self.version == sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), POLL_EVERY)
            sent = self.version
            yield sent
            await asyncio.sleep(MIN_GAP)

    async def _listen(self) -> None:
        while True:
            try:
                conn = await connect_async(self.url, role="dashboard")
                try:
                    for channel in channels_of(self.namespace):
                        await conn.execute(SQL("LISTEN {}").format(Identifier(channel)))
                    self.listening = True
                    self.bump()  # what changed while nobody listened
                    async for _ in notifications(conn):
                        self.bump()
                finally:
                    self.listening = False
                    await conn.close()
            except (psycopg.Error, OSError) as exc:
                log.warning("dashboard: listening on %s failed (%s); polling meanwhile", self.namespace, exc)
            except Exception as exc:  # the feed must outlive any one failure; pages poll meanwhile
                log.warning("dashboard: live feed of %s stopped: %r", self.namespace, exc)
            await asyncio.sleep(RECONNECT_AFTER)


class Feeds:
    """The feed of each namespace a page was opened on, started on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._feeds: dict[str, Feed] = {}

    def of(self, namespace: str) -> Feed:
        feed = self._feeds.get(namespace)
        if feed is None:
            feed = self._feeds[namespace] = Feed(self.url, namespace)
        feed.start()
        return feed

    async def stop(self) -> None:
        for feed in self._feeds.values():
            await feed.stop()


async def event_stream(feed: Feed) -> AsyncIterator[str]:
    """Server-sent events: ``refresh`` with the version, whenever the page should reload its data."""
    yield "retry: 2000\n\n"
    async for version in feed.changes():
        yield f"event: refresh\ndata: {version}\n\n"
