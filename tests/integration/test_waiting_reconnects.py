"""Waiting for a result survives a lost connection: ``get()`` / ``wait()`` reconnect with
backoff, LISTEN again and re-read, up to the caller's timeout."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from tests.cluster import PrivateCluster, migrated, private_cluster
from tests.helpers import running_worker, wait_for

__all__ = ["private_cluster"]  # the fixture, imported for the tests below

Db = psycopg.Connection[tuple[Any, ...]]


class Waiting:
    """``wait`` run in a thread; ``value`` / ``error`` once it returned."""

    def __init__(self, wait: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.ended_at: float | None = None
        self._thread = threading.Thread(target=self._run, args=(wait,), daemon=True)
        self._thread.start()

    def _run(self, wait: Callable[[], Any]) -> None:
        try:
            self.value = wait()
        except BaseException as exc:  # the test reports it
            self.error = exc
        self.ended_at = time.monotonic()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the waiter did not return"


def _add_task(app: Stem) -> None:
    @app.task(name="wait.add")
    def add(x: int, y: int) -> int:
        return x + y


def _waiters(db: Db, namespace: str, since: datetime) -> list[int]:
    """Client connections of this test's app that read its results after ``since``: the
    waiter, idle in its LISTEN wait (other tests' connections never name this namespace)."""
    rows = db.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'stem_pg:client'"
        " AND state = 'idle' AND state_change > %s AND strpos(query, %s) > 0"
        " AND strpos(query, 'results') > 0",
        (since, f'"{namespace}"'),
    ).fetchall()
    return [int(pid) for (pid,) in rows]


def _kill_waiter(db: Db, namespace: str, since: datetime) -> None:
    pids = wait_for(lambda: _waiters(db, namespace, since), 20, "the waiter to read and LISTEN")
    time.sleep(0.2)  # from its read into the wait on the socket
    for pid in pids:
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _server_now(db: Db) -> datetime:
    row = db.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def test_get_survives_its_connection_being_terminated(app: Stem, db: Db) -> None:
    _add_task(app)
    handle = app.enqueue("wait.add", {"x": 2, "y": 3})
    since = _server_now(db)
    waiting = Waiting(lambda: handle.get(timeout=60))
    _kill_waiter(db, app.namespace, since)
    time.sleep(0.5)
    assert waiting.error is None, f"get() failed on a lost connection: {waiting.error!r}"
    with running_worker(app):
        waiting.join(30)
    assert waiting.error is None, repr(waiting.error)
    assert waiting.value == 5


def test_async_wait_survives_its_connection_being_terminated(app: Stem, db: Db) -> None:
    _add_task(app)
    handle = app.enqueue("wait.add", {"x": 20, "y": 3})
    since = _server_now(db)
    waiting = Waiting(lambda: asyncio.run(handle.wait(timeout=60)))
    _kill_waiter(db, app.namespace, since)
    time.sleep(0.5)
    assert waiting.error is None, f"wait() failed on a lost connection: {waiting.error!r}"
    with running_worker(app):
        waiting.join(30)
    assert waiting.error is None, repr(waiting.error)
    assert waiting.value == 23


@pytest.fixture
def cluster_app(private_cluster: PrivateCluster) -> Iterator[Stem]:
    stem = Stem(private_cluster.url, namespace=migrated(private_cluster, "waits"), config=StemConfig())
    _add_task(stem)
    try:
        yield stem
    finally:
        stem.close()


def test_get_waits_through_a_server_restart(private_cluster: PrivateCluster, cluster_app: Stem) -> None:
    handle = cluster_app.enqueue("wait.add", {"x": 40, "y": 2})
    with private_cluster.connect() as db:
        since = _server_now(db)
        waiting = Waiting(lambda: handle.get(timeout=90))
        wait_for(lambda: _waiters(db, cluster_app.namespace, since), 20, "the waiter to read and LISTEN")
    private_cluster.crash()
    time.sleep(3)  # down for a while: connection attempts are refused
    assert waiting.error is None, f"get() failed while the server was down: {waiting.error!r}"
    private_cluster.start()
    with running_worker(cluster_app):
        waiting.join(60)
    assert waiting.error is None, repr(waiting.error)
    assert waiting.value == 42


def test_get_with_the_server_down_ends_with_timeout_at_the_deadline(
    private_cluster: PrivateCluster, cluster_app: Stem
) -> None:
    handle = cluster_app.enqueue("wait.add", {"x": 1, "y": 1})
    cluster_app.close()  # no connection left over from the enqueue: every attempt is refused
    private_cluster.crash()
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"did not finish within 3s \(state unknown\)") as caught:
        handle.get(timeout=3)
    took = time.monotonic() - start
    assert 2.5 <= took < 10, f"gave up after {took:.1f} s with a 3 s timeout"
    assert "unreachable" in str(caught.value)


def test_get_with_no_time_left_still_reads_the_answer_once(app: Stem) -> None:
    _add_task(app)
    handle = app.enqueue("wait.add", {"x": 4, "y": 4})
    with pytest.raises(TimeoutError, match=r"did not finish within 0s \(state: queued\)"):
        handle.get(timeout=0)
    with running_worker(app):
        assert handle.get(timeout=30) == 8
    assert handle.get(timeout=0) == 8
    assert asyncio.run(handle.wait(timeout=0)) == 8
