"""The application of the lease tests: each run of ``span.run`` writes when it started and
when it ended to a file, so a test can tell whether two runs of one job overlapped in time.

Workers load it with ``--app tests.acceptance.spanapp:app`` (cwd: the repository root).
A file, not a table: the runs must be recorded while the database is down (a server
crash) and whatever the database forgot. Each line is a JSON object: ``run`` (one id per
handler call), ``id``, ``pid``, ``attempt``, ``event`` (``start``/``end``), ``t``
(``time.time()``, one clock for all the processes of the machine) and ``tag``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.worker.context import TaskContext

TASK = "span.run"


def _append(path: str, record: dict[str, object]) -> None:
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write of a short line with O_APPEND: lines never interleave
    finally:
        os.close(fd)


def make_app(url: str | None, namespace: str | None) -> Stem:
    """The application; the test enqueues through one made the same way."""
    stem = Stem(url, namespace=namespace, config=StemConfig())

    @stem.task(name=TASK)
    def run(ctx: TaskContext, path: str, seconds: float, tag: str = "") -> int:
        """Record the start, sleep ``seconds`` (no checkpoint: it cannot be stopped), record the end."""
        base = {"run": uuid.uuid4().hex, "id": ctx.task_id, "pid": os.getpid(), "attempt": ctx.attempt}
        _append(path, {**base, "event": "start", "t": time.time(), "tag": tag})
        time.sleep(seconds)
        _append(path, {**base, "event": "end", "t": time.time(), "tag": tag})
        return os.getpid()

    return stem


app = (
    make_app(os.environ["STEM_BROKER_URL"], os.environ.get("STEM_NAMESPACE"))
    if os.environ.get("STEM_BROKER_URL")
    else None
)


@dataclass(frozen=True)
class Run:
    """One handler call: ``end`` is None while it has not ended."""

    job_id: str
    pid: int
    attempt: int
    tag: str
    start: float
    end: float | None


def runs(path: Path) -> list[Run]:
    """Every run recorded in ``path`` (none when it does not exist yet), by start time."""
    if not path.exists():
        return []
    starts: dict[str, dict[str, object]] = {}
    ends: dict[str, float] = {}
    for line in path.read_text().splitlines():
        if not line.endswith("}"):
            continue  # a line being written
        record = json.loads(line)
        if record["event"] == "start":
            starts[record["run"]] = record
        else:
            ends[record["run"]] = float(record["t"])
    found = [
        Run(str(r["id"]), int(str(r["pid"])), int(str(r["attempt"])), str(r["tag"]), float(str(r["t"])),
            ends.get(key))
        for key, r in starts.items()
    ]  # fmt: skip
    return sorted(found, key=lambda run: run.start)


def overlaps(recorded: list[Run], *, now: float | None = None) -> list[tuple[Run, Run]]:
    """Pairs of runs of the same job that ran at the same time (a run not ended runs until ``now``)."""
    until = time.time() if now is None else now
    by_job: dict[str, list[Run]] = defaultdict(list)
    for run in recorded:
        by_job[run.job_id].append(run)
    found = []
    for job_runs in by_job.values():
        for i, first in enumerate(job_runs):
            for second in job_runs[i + 1 :]:
                if second.start < (first.end if first.end is not None else until):
                    found.append((first, second))
    return found
