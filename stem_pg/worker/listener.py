"""The worker's listener: NOTIFY wake-ups for its queues and broadcast channels, and the
hints that control commands wait (the command rows are the record; a note only says when
to read them). A connection that comes back listens again and wakes the claim loop, which
picks up whatever was enqueued while no one listened."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection

from psycopg.sql import SQL, Identifier

from stem_pg.core.control import worker_key
from stem_pg.core.namespaces import Channels
from stem_pg.db.listen import notifications
from stem_pg.db.managed import AsyncConn
from stem_pg.worker.control import WorkerControl


class WorkerListener:
    """``on_connect`` for the listen connection, ``run_once`` for its loop."""

    def __init__(
        self,
        channels: Channels,
        *,
        worker_id: str,
        queues: Collection[str],
        broadcast_channels: Collection[str],
        wake: Callable[[], None],
        control: WorkerControl,
    ) -> None:
        self.channels = channels
        self.worker_id = worker_id
        self.queues = frozenset(queues)
        self.broadcast_channels = frozenset(broadcast_channels)
        self.wake = wake
        self.control = control

    async def on_connect(self, conn: AsyncConn) -> None:
        channels = self.channels
        names = [channels.jobs, channels.control, channels.worker(worker_key(self.worker_id))]
        if self.broadcast_channels:
            names.append(channels.broadcasts)
        for name in names:
            await conn.execute(SQL("LISTEN {}").format(Identifier(name)))
        self.wake()  # anything enqueued while we were not listening
        self.control.request_sync()  # and any revoke or pause we did not hear about

    async def run_once(self, conn: AsyncConn) -> None:
        channels = self.channels
        async for note in notifications(conn):  # a listener that stops answering raises
            if note.channel == channels.jobs:
                if note.payload in self.queues:
                    self.wake()
                    await asyncio.sleep(0)  # the claim goes out before this wait is set up again
            elif note.channel == channels.broadcasts:
                if note.payload in self.broadcast_channels:
                    self.wake()
                    await asyncio.sleep(0)
            else:  # a control channel: only a hint to read the command rows
                self.control.wake()
