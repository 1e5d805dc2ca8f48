"""Migrated namespaces for the tests, made ahead and dropped behind by a thread of the session.

Migrating a namespace and dropping it again cost the server most of a second each; most tests
spend longer waiting (on workers, on timeouts) than using the CPU, so a thread does that work
while they wait. A test that finds the stock empty migrates its namespace itself. Every
namespace is still unique to one test, and made by tests.helpers.apply_migrations.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from tests.helpers import apply_migrations, drop_schema, migration_script, unique_namespace

log = logging.getLogger(__name__)

#: Namespaces kept migrated and waiting: enough for the next test or two, no more.
AHEAD = 2


class NamespaceStock:
    def __init__(self, database_url: str, ahead: int = AHEAD) -> None:
        self.database_url = database_url
        self.ahead = ahead
        self._ready: deque[str] = deque()
        self._to_drop: deque[str] = deque()
        self._closing = False
        self._changed = threading.Condition()
        migration_script()  # alembic renders it with global state: in this thread, not the stock's
        self._thread = threading.Thread(target=self._work, name="namespace-stock", daemon=True)
        self._thread.start()

    def take(self) -> str:
        """A migrated namespace no test has had; the caller discards it when done."""
        with self._changed:
            if self._ready:
                name = self._ready.popleft()
                self._changed.notify_all()
                return name
        name = unique_namespace()
        apply_migrations(self.database_url, name)
        return name

    def discard(self, name: str) -> None:
        """Drop ``name`` (migrated or not, or never created) soon, in the background."""
        with self._changed:
            self._to_drop.append(name)
            self._changed.notify_all()

    def close(self) -> None:
        """Drop every namespace discarded or still in stock, and stop the thread."""
        with self._changed:
            self._closing = True
            self._to_drop.extend(self._ready)
            self._ready.clear()
            self._changed.notify_all()
        self._thread.join(timeout=120)

    def _next_job(self) -> tuple[str, str] | None:
        with self._changed:
            while True:
                if self._to_drop:
                    return "drop", self._to_drop.popleft()
                if self._closing:
                    return None
                if len(self._ready) < self.ahead:
                    return "make", unique_namespace()
                self._changed.wait()

    def _work(self) -> None:
        while (job := self._next_job()) is not None:
            action, name = job
            try:
                if action == "drop":
                    drop_schema(self.database_url, name)
                    continue
                apply_migrations(self.database_url, name)
            except Exception:  # the server is down (a test's outage): the next test shows it
                log.warning("namespace stock: could not %s %s", action, name, exc_info=True)
                with self._changed:
                    self._changed.wait(timeout=1.0)
                continue
            with self._changed:
                if self._closing:
                    self._to_drop.append(name)
                else:
                    self._ready.append(name)
