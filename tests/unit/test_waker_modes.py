"""How a pool enqueue announces its jobs, from what else its process is enqueueing."""

from __future__ import annotations

import time

import pytest

from stem_pg.client import waker as waker_module
from stem_pg.client.waker import Announce, Waker
from stem_pg.db.queries import Queries


def test_announce_mode_follows_the_process_enqueues(monkeypatch: pytest.MonkeyPatch) -> None:
    gap = 0.3  # wider than the real one, so a slow machine cannot blur "right after"
    monkeypatch.setattr(waker_module, "IDLE_GAP", gap)
    waker = Waker("postgresql://unused", Queries("t"))  # connects only to send from its thread
    with waker.enqueueing() as first:
        assert first is Announce.WITH_INSERT  # alone, nothing before it
        with waker.enqueueing() as concurrent:
            assert concurrent is Announce.BY_WAKER
    with waker.enqueueing() as next_one:
        assert next_one is Announce.AFTER_COMMIT  # alone, but right after another
    time.sleep(gap)
    with waker.enqueueing() as after_a_pause:
        assert after_a_pause is Announce.WITH_INSERT
    waker._pending.add("default")  # wake-ups waiting for the thread: leave it to them
    time.sleep(gap)
    with waker.enqueueing() as behind_pending:
        assert behind_pending is Announce.BY_WAKER
