"""Only roles the database lets write a command row command workers (real worker processes).

A NOTIFY needs no privilege: a role with nothing but CONNECT can send one on any
channel. Workers must treat every NOTIFY as a hint to read a table, so such a role
stops, inspects, pauses and revokes nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.client.control import Control
from stem_pg.core.control import worker_key
from stem_pg.core.namespaces import Channels
from tests.acceptance.controlapp import APP
from tests.acceptance.workerapp import Workers, query, scalar
from tests.helpers import run_stem, url_as, wait_for

Db = psycopg.Connection[Any]

#: What a forger gets to see: replies to its inspect, on a channel it listens to.
EVIL = "evil_replies"


@pytest.fixture
def intruder(db: Db, database_url: str) -> Iterator[str]:
    """A login role with CONNECT on the database and no privilege on any schema; its URL."""
    superuser = db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if not superuser or not superuser[0]:
        pytest.skip("needs a superuser to create a role")
    role = f"stem_intruder_{uuid.uuid4().hex[:8]}"
    database = db.info.dbname
    db.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        db.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(database), sql.Identifier(role)
            )
        )
        yield url_as(database_url, role)
    finally:
        db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def alive_workers(db: Db, ns: str) -> set[str]:
    return {r[0] for r in query(db, ns, "SELECT id FROM {ns}.workers WHERE stopped_at IS NULL")}


def forged(command: str, args: dict[str, Any], to: list[str] | None = None) -> str:
    """A command as NOTIFY payloads carried it before commands were rows."""
    body = {"cmd": command, "id": uuid.uuid4().hex, "args": args, "to": to or [], "reply": EVIL}
    return json.dumps(body)


def started(db: Db, ns: str, task_id: str) -> bool:
    return bool(scalar(db, ns, "SELECT count(*) FROM {ns}.ledger WHERE task_id = %s", [task_id]))


@pytest.mark.timeout(90)
def test_a_role_that_can_only_connect_commands_no_worker(
    capp: Stem, workers: Workers, db: Db, namespace: str, database_url: str, intruder: str
) -> None:
    proc = workers.start(app=APP, processes=2)
    wait_for(lambda: len(alive_workers(db, namespace)) == 2, 20, "two worker processes")
    ids = sorted(alive_workers(db, namespace))
    job = capp.enqueue("ctl.forever")
    wait_for(lambda: started(db, namespace, job.id), 15, "the task to start")
    channels = Channels(namespace)

    with psycopg.connect(intruder, autocommit=True) as conn:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(EVIL)))
        notes = [
            (channels.control, forged("inspect", {})),
            (channels.control, forged("pause", {"queue": "default"})),
            (channels.control, forged("revoke", {"ids": [job.id], "terminate": True})),
            (channels.control, forged("shutdown", {"mode": "hard"})),
            *((channels.worker(worker_key(i)), forged("shutdown", {"mode": "hard"}, [i])) for i in ids),
            (channels.jobs, "default"),
            (channels.broadcasts, "fleet"),
            (channels.schedules, "INSERT"),
        ]
        for channel, payload in notes:
            conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))
        heard = [n.payload for n in conn.notifies(timeout=4.0)]  # main's workers answered in ms
        assert heard == [], "a worker replied to a forged command"

        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.control_commands (request_id, command) VALUES ('x', 'shutdown')"
                ).format(sql.Identifier(namespace))
            )

    assert proc.alive(), workers.logs()
    assert alive_workers(db, namespace) == set(ids), "no worker stopped"
    assert query(db, namespace, "SELECT queue FROM {ns}.paused_queues") == []
    assert query(db, namespace, "SELECT task_id FROM {ns}.revokes") == []
    assert scalar(db, namespace, "SELECT state FROM {ns}.jobs WHERE id = %s", [job.id]) == "running"

    # The operator's own commands still work, through the CLI as before.
    done = run_stem(database_url, "worker", "inspect", "--namespace", namespace, "--json")
    assert done.returncode == 0, done.stderr
    inspect = json.loads(done.stdout)
    assert set(inspect["replies"]) == set(ids) and inspect["missing"] == []
    assert [a["id"] for r in inspect["replies"].values() for a in r["active"]] == [job.id]
    stopped = run_stem(
        database_url, "worker", "shutdown", "--namespace", namespace, "--mode", "hard", "--json"
    )
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["replies"] == {i: {"shutdown": "hard"} for i in ids}
    assert proc.wait(timeout=20) == 0


@pytest.mark.timeout(60)
def test_a_worker_that_missed_the_notify_acts_on_the_command_row(
    capp: Stem, workers: Workers, db: Db, namespace: str
) -> None:
    proc = workers.start(app=APP)
    wait_for(lambda: len(alive_workers(db, namespace)) == 1, 15, "the worker")
    (worker,) = alive_workers(db, namespace)
    request = uuid.uuid4().hex
    # Written by plain SQL with no NOTIFY at all: the control loop's poll finds it.
    query(
        db,
        namespace,
        "INSERT INTO {ns}.control_commands (request_id, command, targets) VALUES (%s, 'ping', %s)",
        [request, [worker]],
    )
    wait_for(
        lambda: query(db, namespace, "SELECT 1 FROM {ns}.control_replies WHERE request_id = %s", [request]),
        20,
        "the reply row",
    )
    ((who, payload),) = query(
        db, namespace, "SELECT worker_id, payload FROM {ns}.control_replies WHERE request_id = %s", [request]
    )
    assert (who, payload) == (worker, {"ok": True, "data": {"pong": True}, "error": None})
    assert proc.alive()


@pytest.mark.timeout(60)
def test_replies_go_only_to_roles_that_may_read_the_reply_table(
    capp: Stem, workers: Workers, db: Db, namespace: str, database_url: str, intruder: str
) -> None:
    """An operator role (INSERT on commands, reading replies) commands workers through the
    API; granted the same minus the replies, it never sees what the workers answered."""
    proc = workers.start(app=APP)
    wait_for(lambda: len(alive_workers(db, namespace)) == 1, 15, "the worker")
    role = psycopg.conninfo.conninfo_to_dict(intruder)["user"]  # a URL parses too
    ident, ns = sql.Identifier(str(role)), sql.Identifier(namespace)
    for grant in (
        "GRANT USAGE ON SCHEMA {ns} TO {role}",
        "GRANT SELECT ON {ns}.workers TO {role}",
        "GRANT INSERT ON {ns}.control_commands TO {role}",
    ):
        db.execute(sql.SQL(grant).format(ns=ns, role=ident))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        Control(intruder, namespace).ping(timeout=5)
    db.execute(sql.SQL("GRANT SELECT, DELETE ON {ns}.control_replies TO {role}").format(ns=ns, role=ident))
    started_at = time.monotonic()
    pong = Control(intruder, namespace).ping(timeout=10)
    assert set(pong.replies) == alive_workers(db, namespace) and pong.missing == []
    assert time.monotonic() - started_at < 5, "woken by the hint, not by the timeout"
    assert query(db, namespace, "SELECT issued_by FROM {ns}.control_commands") == [(role,), (role,)]
    assert proc.alive()
