"""Three real ``stem beat`` processes on 1-second schedules while the leader is SIGKILLed and
SIGSTOPped: exactly one job per (schedule, fire time), and no gap longer than the failover."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.schedules import Schedules
from stem_pg.config.schedule_file import load_schedule_yaml
from tests.helpers import REPO_ROOT

LEASE = 2.0
#: A killed or frozen leader is replaced after the lease (2 s) + an acquire attempt (0.5 s)
#: + a tick; 5 s leaves room for a loaded machine.
FAILOVER = 5.0
SCHEDULES = """\
tick:
  task: beat.tick
  spec: every:1s
cron-tick:
  task: beat.cron
  spec: {cron: "* * * * * *", timezone: Europe/Berlin}
"""

Db = psycopg.Connection[tuple[Any, ...]]
BEAT = [sys.executable, "-m", "stem_pg", "beat", "--app", "tests.acceptance.beatapp:app"]


class Beats:
    """``stem beat`` subprocesses of one namespace, with their logs."""

    def __init__(self, url: str, namespace: str, logs: Path) -> None:
        self.url, self.namespace, self.logs = url, namespace, logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.logs / f"beat-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [*BEAT, "--namespace", self.namespace, "--lease", str(LEASE), "--max-sleep", "1"],
            cwd=REPO_ROOT,
            env={**os.environ, "STEM_BROKER_URL": self.url},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def by_pid(self, pid: int) -> subprocess.Popen[bytes]:
        return next(p for p in self.procs if p.pid == pid)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def output(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.logs.glob("*.log")))


@pytest.fixture
def beats(database_url: str, namespace: str, tmp_path: Path) -> Iterator[Beats]:
    group = Beats(database_url, namespace, tmp_path)
    yield group
    group.stop_all()


def q(db: Db, ns: str, text: str) -> list[tuple[Any, ...]]:
    return db.execute(sql.SQL(text).format(ns=sql.Identifier(ns))).fetchall()


def leader_pid(db: Db, ns: str) -> int | None:
    rows = q(db, ns, "SELECT owner FROM {ns}.locks WHERE key = 'beat:leader' AND expires_at > now()")
    return int(rows[0][0].split(".")[-2]) if rows else None


def wait_for_leader(db: Db, ns: str, *, other_than: set[int], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = leader_pid(db, ns)
        if pid is not None and pid not in other_than:
            return pid
        time.sleep(0.1)
    raise AssertionError(f"no new leader within {timeout}s")


def chaos(beats: Beats, db: Db, ns: str, duration: float) -> set[int]:
    """Kill and freeze leaders for ``duration`` seconds; returns every pid that led."""
    leaders: set[int] = set()
    deadline = time.monotonic() + duration
    round_ = 0
    while time.monotonic() < deadline - 12:
        time.sleep(3)
        pid = wait_for_leader(db, ns, other_than=set(), timeout=FAILOVER + 5)
        leaders.add(pid)
        victim = beats.by_pid(pid)
        if round_ % 2 == 0:
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            beats.start()  # keep three running
        else:
            victim.send_signal(signal.SIGSTOP)
        successor = wait_for_leader(db, ns, other_than={pid}, timeout=FAILOVER + 5)
        leaders.add(successor)
        if round_ % 2 == 1:
            time.sleep(LEASE * 2)  # the frozen one wakes up long after losing the lease
            victim.send_signal(signal.SIGCONT)
        round_ += 1
    time.sleep(max(0.0, deadline - time.monotonic()))
    return leaders


def check(db: Db, ns: str, leaders: set[int], duration: float) -> None:
    jobs = q(
        db,
        ns,
        "SELECT headers->>'stem-schedule', headers->>'stem-fire-time', count(*) FROM {ns}.jobs"
        " GROUP BY 1, 2 HAVING count(*) > 1",
    )
    assert jobs == [], "two jobs for one (schedule, fire time)"
    orphans = q(
        db,
        ns,
        "SELECT f.schedule, f.fire_time FROM {ns}.schedule_fires f"
        " FULL JOIN {ns}.jobs j ON j.id = f.task_id WHERE j.id IS NULL OR f.task_id IS NULL",
    )
    assert orphans == [], "every fire enqueued exactly its job, and every job has its fire"
    for name in ("tick", "cron-tick"):
        times = [
            row[0]
            for row in db.execute(
                sql.SQL(
                    "SELECT fire_time FROM {}.schedule_fires WHERE schedule = %s ORDER BY fire_time"
                ).format(sql.Identifier(ns)),
                (name,),
            )
        ]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        print(f"{name}: {len(times)} fires in {duration:.0f}s, longest gap {max(gaps):.2f}s")
        assert max(gaps) <= FAILOVER, f"{name}: a {max(gaps):.1f}s gap in {gaps}"
        fired = [
            row[0]
            for row in db.execute(
                sql.SQL(
                    "SELECT fired_at FROM {}.schedule_fires WHERE schedule = %s ORDER BY fired_at"
                ).format(sql.Identifier(ns)),
                (name,),
            )
        ]
        real_gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(fired)]
        assert max(real_gaps) <= FAILOVER, f"{name}: nothing fired for {max(real_gaps):.1f}s"
        assert len(times) >= duration * 0.6, f"{name}: only {len(times)} fires in {duration}s"
        if name == "cron-tick":
            assert all(t.microsecond == 0 for t in times), "cron fires on whole seconds"
    firing = {row[0] for row in q(db, ns, "SELECT DISTINCT beat_id FROM {ns}.schedule_fires")}
    assert len(firing) >= 3, f"leadership moved between beats: {firing}"
    assert len(leaders) >= 3


def run(beats: Beats, db: Db, ns: str, database_url: str, duration: float) -> None:
    Schedules(database_url, ns).apply(load_schedule_yaml(SCHEDULES))
    for _ in range(3):
        beats.start()
    wait_for_leader(db, ns, other_than=set(), timeout=20)
    started = time.monotonic()
    leaders = chaos(beats, db, ns, duration)
    beats.stop_all()
    try:
        check(db, ns, leaders, time.monotonic() - started)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{beats.output()}") from None


@pytest.mark.timeout(120)
def test_three_beats_with_the_leader_killed_and_frozen(
    beats: Beats, db: Db, namespace: str, database_url: str
) -> None:
    run(beats, db, namespace, database_url, duration=25)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_three_beats_for_two_minutes_of_chaos(
    beats: Beats, db: Db, namespace: str, database_url: str
) -> None:
    run(beats, db, namespace, database_url, duration=120)
