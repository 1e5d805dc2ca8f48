"""The overview's kept snapshot: shared while fresh, read afresh on a change heard or made."""

from __future__ import annotations

import threading
import time

from stem_pg.dashboard.snapshots import Snapshots


class Reads:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        self.count += 1
        return self.count


def test_a_fresh_snapshot_serves_every_viewer_with_one_read() -> None:
    snapshots, read = Snapshots(fresh_for=60), Reads()
    assert [snapshots.get("ns", 3, read) for _ in range(5)] == [1] * 5
    assert snapshots.get("other", 3, read) == 2  # each namespace its own
    assert snapshots.get("ns", 3, read, reuse=False) == 3  # a page load reads
    assert snapshots.get("ns", 3, read) == 3  # and keeps what it read


def test_a_notification_heard_an_action_or_age_makes_the_next_viewer_read_afresh() -> None:
    snapshots, read = Snapshots(fresh_for=60), Reads()
    assert snapshots.get("ns", 3, read) == 1
    assert snapshots.get("ns", 4, read) == 2  # the feed's version moved
    snapshots.forget("ns")
    assert snapshots.get("ns", 4, read) == 3
    aged = Snapshots(fresh_for=0.05)
    assert aged.get("ns", None, read) == 4
    time.sleep(0.06)
    assert aged.get("ns", None, read) == 5


def test_an_action_during_a_read_keeps_that_read_from_being_served_again() -> None:
    snapshots, reading, go_on = Snapshots(fresh_for=60), threading.Event(), threading.Event()

    def slow() -> str:
        reading.set()
        go_on.wait(5)
        return "before the action"

    first = threading.Thread(target=snapshots.get, args=("ns", 1, slow))
    first.start()
    reading.wait(5)
    snapshots.forget("ns")
    go_on.set()
    first.join(5)
    assert snapshots.get("ns", 1, lambda: "after the action") == "after the action"
