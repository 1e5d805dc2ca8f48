"""When a worker process retires: after ``--max-tasks-per-child`` tasks, when its memory
passes ``--max-memory-per-child``, or when a sync handler overran its hard time limit.

A retiring process stops claiming, hands back the jobs it had not started, lets its
running ones end, writes what it holds and exits with ``EXIT_RETIRED``; the supervisor
(``stem_pg.worker.supervisor``) puts a fresh process in its place at once.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

#: The exit status of a process that retired on purpose, to be replaced at once
#: (EX_TEMPFAIL: "try again"; a process manager restarting on failure restarts it too).
EXIT_RETIRED = 75

#: A retry written while the attempt before it still runs in a thread of this (exiting)
#: process waits at least this long, so that no other worker starts it before the exit.
OVERRUN_RETRY_MARGIN = 2.0


def resident_kib() -> int:
    """This process's resident memory now, in KiB (its peak where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak


class Recycler:
    """Counts the tasks a process started and checks its memory after each one; calls
    ``retire(reason)`` once a limit is reached (``None`` limits are off)."""

    def __init__(
        self, *, max_tasks: int | None, max_memory_kib: int | None, retire: Callable[[str], None]
    ) -> None:
        self.max_tasks = max_tasks
        self.max_memory_kib = max_memory_kib
        self.retire = retire
        self.started = 0

    def task_started(self) -> None:
        """A task starts: the one that reaches ``max_tasks`` is the last this process starts."""
        self.started += 1
        if self.max_tasks is not None and self.started == self.max_tasks:
            self.retire(f"it started {self.started} tasks (--max-tasks-per-child)")

    def task_ended(self) -> None:
        if self.max_memory_kib is None:
            return
        rss = resident_kib()
        if rss > self.max_memory_kib:
            self.retire(
                f"its resident memory is {rss} KiB, over --max-memory-per-child {self.max_memory_kib}"
            )
