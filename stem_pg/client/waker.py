"""Job wake-ups sent by the application for its inserts, coalesced when they are many.

The application's pool connections insert with ``stem.client_notifies`` on, so
the insert trigger sends no NOTIFY (migration 0005). An enqueue announces
itself in one of two ways (``enqueueing()`` picks):

* alone in its process (no other enqueue of the process under way), the
  inserting statement sends the NOTIFY itself: one statement, one commit, and
  the workers hear of the job as it commits. A loop of single enqueues is one
  commit per call;
* while other enqueues of its process are under way, it hands its queues to
  ``request()``: one background thread sends one NOTIFY per queue for every
  commit that asked since its last one. A NOTIFY holds a server-wide lock from
  its commit through the WAL flush, so concurrent inserts that each notified
  would commit one at a time; inserting quietly lets them share a WAL flush, and
  the waker's notify-only transaction writes no WAL of its own to wait for.

A wake-up that cannot be sent is only latency lost: workers also poll. The
waker's connection is reopened at once if it died while idle; while the
database stays unreachable, the pending queues are retried after a backoff
(``core.backoff``), with one warning when that starts and one line when it ends.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import psycopg

from stem_pg.core.backoff import Outage
from stem_pg.core.envelope import JobSpec
from stem_pg.core.redaction import redact
from stem_pg.db.connect import DatabaseUnavailable, connect
from stem_pg.db.queries import Queries
from stem_pg.db.stores.enqueue import EnqueueStore

log = logging.getLogger(__name__)


def due_queues(specs: Iterable[JobSpec]) -> set[str]:
    """The queues that got a job it may run now (delayed ones are found by polling)."""
    now = datetime.now(UTC)
    return {s.queue for s in specs if (s.eta is None and not s.countdown) or (s.eta and s.eta <= now)}


class Announce(enum.Enum):
    """How a pool enqueue wakes the workers (see the module docstring)."""

    WITH_INSERT = "in the inserting statement"
    BY_WAKER = "through the waker thread"


class Waker:
    """One sender thread and connection per process, started on the first request."""

    def __init__(self, url: str, queries: Queries) -> None:
        self.url = url
        self.queries = queries
        self.store = EnqueueStore(queries)
        self._pending: set[str] = set()
        self._busy = 0  # pool enqueues under way in this process
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._closing = threading.Event()  # ends a backoff sleep early
        self._outage = Outage()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._inherited: list[psycopg.Connection[tuple[object, ...]]] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pid = 0

    @contextlib.contextmanager
    def enqueueing(self) -> Iterator[Announce]:
        """Around a pool enqueue: how it should announce its jobs, from what else this
        process is enqueueing (the module docstring tells the two ways)."""
        how = self.begin()
        try:
            yield how
        finally:
            self.end()

    def begin(self) -> Announce:
        """``enqueueing()`` without the context manager (the single enqueue's hot path):
        how to announce; call ``end()`` once the enqueue is done, whatever happened."""
        with self._lock:
            self._busy += 1
            alone = self._busy == 1 and not self._pending
        return Announce.WITH_INSERT if alone else Announce.BY_WAKER

    def end(self) -> None:
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
                if self._pid != os.getpid() and self._conn is not None:
                    # The parent's connection: a child neither uses nor closes it (closing
                    # would say goodbye to the server on the parent's socket).
                    self._inherited.append(self._conn)
                    self._conn = None
                self._pid = os.getpid()
                self._stopping = False
                self._closing.clear()
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
        self._closing.set()
        self._wanted.set()
        thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            with self._lock:
                queues, self._pending = sorted(self._pending), set()
            delay = self._send(queues) if queues else None
            if delay is not None and not self._stopping:
                with self._lock:
                    self._pending.update(queues)  # retried after the backoff
                self._closing.wait(delay)
                self._wanted.set()
            elif self._stopping and not self._pending:
                break
        if self._conn is not None:
            self._conn.close()

    def _send(self, queues: list[str]) -> float | None:
        """Send the wake-ups of ``queues``: None once sent, else the delay before a retry."""
        while True:
            reused = self._conn is not None
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self.url, role="waker")
                self.store.wake(self._conn, queues=queues)
            except (psycopg.Error, DatabaseUnavailable) as exc:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                if reused:
                    continue  # it died while idle (a restart, a terminated backend): a new one at once
                failure = self._outage.failed()
                if failure.starts:
                    log.warning(
                        "could not wake workers of %s (they will poll); retrying with backoff: %s",
                        queues,
                        redact(" ".join(str(exc).split())),
                    )
                return failure.delay
            recovery = self._outage.recovered()
            if recovery is not None:
                log.info("waker reconnected %s", recovery.describe())
            return None
