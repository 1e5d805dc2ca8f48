"""``stem worker status --follow``: a newly started worker shows up at once (its heartbeat on
the topic, not the next read of the table), and what no notification says (a row written
without one) still shows up at the next read of the workers table."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from stem_pg.client.app import Stem
from tests.helpers import REPO_ROOT, running_worker, stem_env


class Lines:
    """The lines a process prints, readable with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, predicate: Any, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        seen = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if predicate(line):
                return line
            seen.append(line)
        raise AssertionError(f"no such line within {timeout}s; printed: {seen}")


@contextmanager
def following(database_url: str, namespace: str, *args: str) -> Iterator[Lines]:
    command = [sys.executable, "-m", "stem_pg", "worker", "status", "--follow", "-n", namespace, *args]
    proc = subprocess.Popen(
        command, cwd=REPO_ROOT, env=stem_env(STEM_BROKER_URL=database_url),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        yield Lines(proc)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
        proc.wait()


def test_a_new_worker_shows_up_at_once_not_at_the_next_poll(database_url: str, app: Stem) -> None:
    with following(database_url, app.namespace, "--interval", "60") as out:
        out.until(lambda line: line == "(none)", timeout=30)  # the table: no worker yet
        with running_worker(app, worker_id="w-live", concurrency=3):
            started = time.monotonic()
            line = out.until(lambda line: "w-live" in line, timeout=15)
            assert time.monotonic() - started < 15 < 60
            assert "w-live  alive: 0/3 in flight, 0 processed, 0 failed, up " in line
        line = out.until(lambda line: "w-live" in line, timeout=15)
        assert "w-live  stopped: " in line


def _insert_worker(db: psycopg.Connection[Any], namespace: str, worker_id: str) -> None:
    db.execute(
        sql.SQL(
            "INSERT INTO {}.workers (id, host, pid, queues, concurrency) VALUES (%s, 'h', 7, '{{q}}', 2)"
        ).format(sql.Identifier(namespace)),
        (worker_id,),
    )


def test_json_lines_and_the_table_fallback(
    database_url: str, namespace: str, db: psycopg.Connection[Any]
) -> None:
    _insert_worker(db, namespace, "w-first")
    with following(database_url, namespace, "--interval", "0.3", "--json") as out:
        out.until(lambda line: "w-first" in line, timeout=30)  # the first read of the table
        _insert_worker(db, namespace, "w-silent")  # no NOTIFY: only the next read sees it
        event = json.loads(out.until(lambda line: "w-silent" in line, timeout=30))
        assert (event["event"], event["id"], event["status"], event["concurrency"]) == (
            "worker",
            "w-silent",
            "alive",
            2,
        )
