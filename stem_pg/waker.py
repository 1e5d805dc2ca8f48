"""Job wake-ups sent by the application after its inserts commit, coalesced.

The application's pool connections insert with ``stem.client_notifies`` on, so
the insert trigger sends no NOTIFY (migration 0005): a NOTIFY would hold a
database-wide lock through the inserting transaction's WAL flush and make
concurrent enqueues commit one at a time. Instead an enqueue that runs alone in
its process (``solo()``) sends the NOTIFY itself right after its commit, and
concurrent ones hand their queues to ``request()``: one background thread sends
one NOTIFY per queue for every commit that asked since its last one. A wake-up
that cannot be sent is only latency lost: workers also poll.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator

import psycopg

from stem_pg.dsn import redact
from stem_pg.queries import Queries

log = logging.getLogger(__name__)


class Waker:
    """One sender thread and connection per process, started on the first request."""

    def __init__(self, url: str, queries: Queries) -> None:
        self.url = url
        self.queries = queries
        self._pending: set[str] = set()
        self._busy = 0  # pool enqueues under way in this process
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pid = 0

    @contextlib.contextmanager
    def solo(self) -> Iterator[bool]:
        """Around a pool enqueue: True when no other enqueue of this process is under way
        and nothing waits to be sent. Such an enqueue announces its own commit on its
        connection (one round trip, the lowest latency); under concurrent enqueues the
        thread's coalescing is worth more."""
        with self._lock:
            self._busy += 1
            alone = self._busy == 1 and not self._pending
        try:
            yield alone
        finally:
            with self._lock:
                self._busy -= 1

    def request(self, queues: Iterable[str]) -> None:
        """Wake the workers of ``queues`` soon (call it after the inserting commit)."""
        queues = set(queues)
        if not queues:
            return
        with self._lock:
            self._pending |= queues
            if self._thread is None or self._pid != os.getpid():  # first use, or a forked child
                self._pid = os.getpid()
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name="stem-waker", daemon=True)
                self._thread.start()
                atexit.register(self.close)  # a script that exits right after enqueueing still wakes
        self._wanted.set()

    def close(self, timeout: float = 2.0) -> None:
        """Send what is pending and stop the thread."""
        thread = self._thread
        if thread is None or self._pid != os.getpid():
            return
        self._stopping = True
        self._wanted.set()
        thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        while True:
            self._wanted.wait()
            self._wanted.clear()
            with self._lock:
                queues, self._pending = sorted(self._pending), set()
            if queues:
                conn = self._send(conn, queues)
            if self._stopping and not self._pending:
                break
        if conn is not None:
            conn.close()

    def _send(
        self, conn: psycopg.Connection[tuple[object, ...]] | None, queues: list[str]
    ) -> psycopg.Connection[tuple[object, ...]] | None:
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(self.url, autocommit=True, application_name="stem_pg:waker")
            conn.execute(self.queries["job_wake"], {"channel": self.queries.channels.jobs, "queues": queues})
            return conn
        except psycopg.Error as exc:
            log.warning("could not wake workers of %s (they will poll): %s", queues, redact(str(exc)))
            if conn is not None:
                conn.close()
            return None
