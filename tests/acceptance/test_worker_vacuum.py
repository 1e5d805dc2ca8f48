"""A REPEATABLE READ transaction left idle for two minutes while worker processes drain a
steady stream of jobs: the workers must not vacuum the jobs table again and again (a VACUUM
can remove nothing the snapshot may still see), and their log names the session to blame.

Two runs side by side, each in a database of its own (a snapshot holds back VACUUM in its
whole database, and other tests share the usual one): a control run without the snapshot,
and the held run. The server's autovacuum is off on this machine (bench/README.md), and
``vacuum_count`` counts manual vacuums only, so it counts the workers' own.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import EnqueueRequest, Stem
from stem_pg.schema.migrate import migrate
from tests.acceptance.vacuumapp import make_app
from tests.acceptance.workerapp import Workers, registered_pids, scalar
from tests.databases import private_database
from tests.helpers import unique_namespace, wait_for

RATE = 300  # jobs a second: two dead row versions each, 20,000 (the threshold) in about 35 s
HOLD = 120.0
PROCESSES = 2
HOLDER_APP = "stem_test:report"


@dataclass
class Run:
    """One database, its namespace, worker processes and a stream of jobs into it."""

    url: str
    ns: str
    stem: Stem
    workers: Workers
    db: psycopg.Connection[Any]
    stop: threading.Event = field(default_factory=threading.Event)
    enqueued: int = 0

    def vacuums(self) -> int:
        return int(
            scalar(self.db, self.ns, "SELECT vacuum_count FROM pg_stat_all_tables"
                   " WHERE schemaname = %s AND relname = 'jobs'", (self.ns,))
        )  # fmt: skip

    def stream(self) -> None:
        """RATE jobs a second, in batches every 0.1 s, until ``stop``."""
        due = time.monotonic()
        while not self.stop.is_set():
            self.stem.enqueue_many(EnqueueRequest("vac.noop", {}) for _ in range(RATE // 10))
            self.enqueued += RATE // 10
            due += 0.1
            self.stop.wait(max(0.0, due - time.monotonic()))

    def summary(self) -> str:
        size = scalar(self.db, self.ns, "SELECT pg_total_relation_size(%s::regclass)", (f'"{self.ns}".jobs',))
        mean = "SELECT avg(extract(epoch FROM finished_at - enqueued_at)) * 1000 FROM {ns}.results"
        latency = scalar(self.db, self.ns, mean)
        done = scalar(self.db, self.ns, "SELECT count(*) FROM {ns}.results")
        return (
            f"{self.vacuums()} vacuums, jobs table {size / 2**20:.1f} MB, {done}/{self.enqueued} jobs done,"
            f" mean latency {float(latency or 0):.0f} ms"
        )


@contextlib.contextmanager
def run(database_url: str, log_dir: Path, prefix: str) -> Iterator[Run]:
    with private_database(database_url, prefix) as url, psycopg.connect(url, autocommit=True) as db:
        ns = unique_namespace()
        migrate(url, ns)
        log_dir.mkdir()
        workers = Workers(url, ns, log_dir)
        stem = make_app(url, ns)
        try:
            workers.start(
                processes=PROCESSES, concurrency=8, lease=10.0, app="tests.acceptance.vacuumapp:app"
            )
            wait_for(lambda: len(registered_pids(db, ns)) == PROCESSES, 30, f"workers\n{workers.logs()}")
            yield Run(url, ns, stem, workers, db)
        finally:
            workers.cleanup()
            stem.close()


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_a_snapshot_held_for_two_minutes_does_not_start_a_vacuum_storm(
    database_url: str, tmp_path: Path
) -> None:
    with (
        run(database_url, tmp_path / "control", "stem_vac_control") as control,
        run(database_url, tmp_path / "held", "stem_vac_held") as held,
        psycopg.connect(held.url, autocommit=True, application_name=HOLDER_APP) as holder,
    ):
        holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        holder.execute(f'SELECT count(*) FROM "{held.ns}".jobs')  # the snapshot is taken here
        holder_pid = holder.info.backend_pid
        base = {"control": control.vacuums(), "held": held.vacuums()}
        streams = [threading.Thread(target=r.stream, daemon=True) for r in (control, held)]
        for thread in streams:
            thread.start()
        time.sleep(HOLD)
        for r in (control, held):
            r.stop.set()
        for thread in streams:
            thread.join(timeout=30)
        counts = {"control": control.vacuums() - base["control"], "held": held.vacuums() - base["held"]}
        report = f"control: {control.summary()}\nheld: {held.summary()}"
        print(report)
        named = [
            line
            for line in held.workers.logs(tail=None).splitlines()
            if f"session pid {holder_pid} (application_name '{HOLDER_APP}'" in line
        ]
        print("\n".join(named))

        holder.execute("COMMIT")  # the horizon moves on: the held-back vacuum runs now
        wait_for(
            lambda: held.vacuums() - base["held"] > counts["held"], 30, "a vacuum once the snapshot ended"
        )

    assert counts["control"] >= 1, report  # the stream is strong enough to call for vacuums
    assert counts["held"] <= 2 * counts["control"], report
    assert 1 <= len(named) <= PROCESSES, report  # named, once per worker process
    assert all("held back" in line and "idle in transaction" in line for line in named), named
