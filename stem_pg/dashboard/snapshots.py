"""The overview's data of each namespace, kept for a second: many viewers cost one read.

Every open overview refreshes on each change it hears of (at most once a second), so ten
viewers of a busy namespace would read the last hour of results ten times a second. A kept
snapshot serves those live refreshes while it is younger than ``FRESH_FOR`` and the
namespace's live feed heard nothing since it was read; a notification (the feed's version
moves) or an action taken from this dashboard makes the next refresh read afresh. A page
load always reads (and keeps what it read): a change made just before it may not have been
heard yet, and no refresh would follow for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FRESH_FOR = 1.0


@dataclass(frozen=True)
class _Kept:
    version: tuple[int | None, int]  # the feed's version, the namespace's forget count
    read_at: float
    value: Any


class Snapshots:
    def __init__(self, fresh_for: float = FRESH_FOR) -> None:
        self.fresh_for = fresh_for
        self._kept: dict[str, _Kept] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._forgotten: dict[str, int] = {}
        self._guard = threading.Lock()

    def get(self, namespace: str, version: int | None, read: Callable[[], Any], *, reuse: bool = True) -> Any:
        """The namespace's snapshot if ``reuse``, it is fresh and it was read at ``version``
        of its feed (None: no feed listening, age alone decides), else ``read()``'s, kept.
        Callers that miss together wait for one read. Blocking: call it off the event loop."""
        with self._guard:
            lock = self._locks.setdefault(namespace, threading.Lock())
        with lock:
            with self._guard:
                at = (version, self._forgotten.get(namespace, 0))
                kept = self._kept.get(namespace)
            started = time.monotonic()
            if reuse and kept is not None and kept.version == at and started - kept.read_at < self.fresh_for:
                return kept.value
            value = read()
            with self._guard:
                self._kept[namespace] = _Kept(at, started, value)
            return value

    def forget(self, namespace: str) -> None:
        """Drop the namespace's snapshot (after an action changed what it shows), and any
        snapshot a read still under way when it was called would keep."""
        with self._guard:
            self._forgotten[namespace] = self._forgotten.get(namespace, 0) + 1
            self._kept.pop(namespace, None)
