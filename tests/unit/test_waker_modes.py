"""How a pool enqueue announces its jobs, from what else its process is enqueueing."""

from __future__ import annotations

from stem_pg.client.waker import Announce, Waker
from stem_pg.db.queries import Queries


def test_announce_mode_follows_the_process_enqueues() -> None:
    waker = Waker("postgresql://unused", Queries("t"))  # connects only to send from its thread
    with waker.enqueueing() as first:
        assert first is Announce.WITH_INSERT  # alone, nothing before it
        with waker.enqueueing() as concurrent:
            assert concurrent is Announce.BY_WAKER
    with waker.enqueueing() as next_one:
        assert next_one is Announce.WITH_INSERT  # alone right after another (a loop): still one commit
    waker._pending.add("default")  # wake-ups waiting for the thread: leave it to them
    with waker.enqueueing() as behind_pending:
        assert behind_pending is Announce.BY_WAKER
