"""The application of the many-hosts tests (tests/acceptance/test_many_hosts.py).

Workers in other network namespaces load it with ``--app tests.acceptance.hostsapp:app``
(cwd: the repository root); every handler reports the host it ran on
(``socket.gethostname()``: each host namespace has a name of its own).

* ``hosts.once``: one row in the ``runs`` table (``create_runs``) per call, on the
  handler's own connection: a job that ran twice has two rows;
* ``hosts.span``: a line when it starts and one when it ends in a file (the runs must be
  recorded while the host is cut off from the database), read back by ``spans()``;
* ``fleet.hello``: a broadcast on channel ``fleet``; returns the host's name.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.config.routing_file import load_routing_yaml
from stem_pg.config.settings import StemConfig
from stem_pg.worker.context import TaskContext

APP = "tests.acceptance.hostsapp:app"
ROUTING = """
broadcasts:
  fleet: {delivery: at-least-once}
routes:
  - match: {task: "fleet.*"}
    target: {type: broadcast, name: fleet}
"""


def make_app(url: str | None, namespace: str | None) -> Stem:
    stem = Stem(url, namespace=namespace, routing=load_routing_yaml(ROUTING), config=StemConfig())

    @stem.task(name="hosts.once")
    def once(ctx: TaskContext, n: int, sleep: float = 0.0) -> str:
        time.sleep(sleep)
        with psycopg.connect(stem.url, autocommit=True, application_name="stem_test:ledger") as conn:
            conn.execute(
                sql.SQL("INSERT INTO {}.runs (task_id, n, host, pid) VALUES (%s, %s, %s, %s)").format(
                    sql.Identifier(stem.namespace)
                ),
                (ctx.task_id, n, socket.gethostname(), os.getpid()),
            )
        return socket.gethostname()

    @stem.task(name="hosts.span")
    def span(ctx: TaskContext, path: str, seconds: float) -> str:
        """Record the start, sleep ``seconds`` (it cannot be stopped), record the end."""
        base = {"run": uuid.uuid4().hex, "id": ctx.task_id, "host": socket.gethostname()}
        _append(path, {**base, "event": "start", "t": time.time()})
        time.sleep(seconds)
        _append(path, {**base, "event": "end", "t": time.time()})
        return socket.gethostname()

    @stem.task(name="fleet.hello")
    def hello(ctx: TaskContext) -> str:
        return socket.gethostname()

    return stem


def _append(path: str, record: dict[str, object]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())  # one short O_APPEND write: no interleaving
    finally:
        os.close(fd)


app = (
    make_app(os.environ["STEM_BROKER_URL"], os.environ.get("STEM_NAMESPACE"))
    if os.environ.get("STEM_BROKER_URL")
    else None
)


def create_runs(db: psycopg.Connection[Any], namespace: str) -> None:
    db.execute(
        sql.SQL(
            "CREATE TABLE {}.runs (task_id text NOT NULL, n int, host text, pid int,"
            " at timestamptz NOT NULL DEFAULT clock_timestamp())"
        ).format(sql.Identifier(namespace))
    )


@dataclass(frozen=True)
class Span:
    """One call of ``hosts.span``: ``end`` is None while it runs."""

    job_id: str
    host: str
    start: float
    end: float | None


def spans(path: Path) -> list[Span]:
    """Every call recorded in ``path``, by start time (none while the file does not exist)."""
    if not path.exists():
        return []
    starts: dict[str, dict[str, Any]] = {}
    ends: dict[str, float] = {}
    for line in path.read_text().splitlines():
        if not line.endswith("}"):
            continue  # a line being written
        record = json.loads(line)
        if record["event"] == "start":
            starts[record["run"]] = record
        else:
            ends[record["run"]] = float(record["t"])
    found = [Span(r["id"], r["host"], float(r["t"]), ends.get(key)) for key, r in starts.items()]
    return sorted(found, key=lambda s: s.start)
