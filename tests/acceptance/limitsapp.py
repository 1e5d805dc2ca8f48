"""The application of the worker-recycling tests (tests/acceptance/test_worker_limits.py).

Worker subprocesses load it with ``--app tests.acceptance.limitsapp:app``. Every handler
appends JSON lines to the file named by its ``path`` argument: ``start`` and ``end`` of
each attempt, with its pid, and a ``tick`` every 50 ms while ``lim.sleepy`` sleeps, so
a test can tell when an attempt was last alive even if its process was killed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.worker.context import TaskContext

#: Held by ``lim.hog`` so that the memory stays resident after it returns.
_hoard: list[bytearray] = []


def note(path: str, ctx: TaskContext, event: str) -> None:
    """Append one line (a single write on an O_APPEND file: lines never interleave)."""
    line = {"id": ctx.task_id, "attempt": ctx.attempt, "pid": os.getpid(), "event": event, "t": time.time()}
    with open(path, "a") as out:
        out.write(json.dumps(line) + "\n")


def read_notes(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_limits_app(url: str | None, namespace: str | None) -> Stem:
    stem = Stem(url, namespace=namespace, config=StemConfig())

    @stem.task(name="lim.sleepy", time_limit=1, max_retries=2, retry_backoff=0.1, retry_jitter=False)
    def sleepy(ctx: TaskContext, path: str, sleeps: Sequence[float]) -> int:
        """Sleep ``sleeps[attempt - 1]`` seconds (the last entry for later attempts), ticking."""
        note(path, ctx, "start")
        deadline = time.monotonic() + sleeps[min(ctx.attempt, len(sleeps)) - 1]
        while time.monotonic() < deadline:
            time.sleep(0.05)
            note(path, ctx, "tick")
        note(path, ctx, "end")
        return ctx.attempt

    @stem.task(name="lim.quick")
    def quick(ctx: TaskContext, path: str) -> int:
        note(path, ctx, "start")
        note(path, ctx, "end")
        return os.getpid()

    @stem.task(name="lim.hog")
    def hog(ctx: TaskContext, path: str, mib: int) -> int:
        """Keep ``mib`` MiB resident in this process (a leak)."""
        note(path, ctx, "start")
        block = bytearray(mib * 1024 * 1024)
        for offset in range(0, len(block), 4096):  # touch every page: resident, not just reserved
            block[offset] = 1
        _hoard.append(block)
        note(path, ctx, "end")
        return os.getpid()

    return stem


app = (
    make_limits_app(os.environ["STEM_BROKER_URL"], os.environ.get("STEM_NAMESPACE"))
    if os.environ.get("STEM_BROKER_URL")
    else None
)
