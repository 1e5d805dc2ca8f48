"""``stem doctor`` names what slows a queue: a session the test holds idle in transaction
(with a transaction id, so it holds the xmin horizon), a missing index; a clean namespace
has no problem of its own. The shared test server has other sessions: assertions look at
this test's pid and this namespace's findings only."""

from __future__ import annotations

import json

import psycopg

from stem_pg.core.budget import WORKER_PROCESS, WORKER_PROCESS_PER_LOOP
from tests.helpers import run_stem


def test_a_session_idle_in_transaction_is_named_and_exits_1(database_url: str, namespace: str) -> None:
    app_name = f"doctor-test-{namespace}"
    with psycopg.connect(database_url, application_name=app_name) as held:
        held.execute("SELECT txid_current()")  # an xid: VACUUM must keep every row deleted after it
        pid = held.info.backend_pid
        run = run_stem(database_url, "doctor", "--namespace", namespace, "--idle-after", "0")
        as_json = run_stem(database_url, "doctor", "--namespace", namespace, "--idle-after", "0", "--json")
        held.rollback()
    assert run.returncode == 1, run.stdout + run.stderr
    (line,) = [x for x in run.stdout.splitlines() if x.startswith(f"PROBLEM xmin_horizon pid {pid}:")]
    assert f"application_name {app_name!r}" in line
    assert "idle in transaction" in line
    assert "query: SELECT txid_current()" in line
    assert f"fix: end its transaction, or SELECT pg_terminate_backend({pid})" in run.stdout
    assert as_json.returncode == 1, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    (finding,) = [f for f in report["findings"] if f["facts"].get("pid") == pid]
    assert finding["severity"] == "problem"
    assert finding["facts"]["application_name"] == app_name
    assert finding["facts"]["state"] == "idle in transaction"
    assert finding["facts"]["query"] == "SELECT txid_current()"


def test_a_clean_namespace_has_no_problem_of_its_own(database_url: str, namespace: str) -> None:
    run = run_stem(database_url, "doctor", "--namespace", namespace, "--json")
    report = json.loads(run.stdout)
    ours = [f for f in report["findings"] if f["check"] != "xmin_horizon"]  # other sessions' business
    assert {f["check"] for f in ours} >= {"dead_rows", "vacuum", "analyze", "indexes", "notify_queue"}
    assert [f for f in ours if f["check"] != "connections" and f["severity"] != "ok"] == []
    indexes = [f for f in ours if f["check"] == "indexes"]
    assert indexes[0]["detail"].startswith("all ") and indexes[0]["detail"].endswith(
        "indexes present and valid"
    )
    problems = any(f["severity"] == "problem" for f in report["findings"])
    assert run.returncode == (1 if problems else 0), run.stderr
    assert report["ok"] is not problems


def test_a_fleet_near_the_connection_slots_warns(database_url: str, namespace: str) -> None:
    """Running worker processes (rows with a fresh heartbeat) that may open about 90 % of the
    server's connection slots between them: a warning naming the count. Each row counts the
    connections its worker registered (two by default); a row of a worker older than migration
    0020 has none and counts six."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
        ).fetchone()
        assert row is not None
        slots = int(row[0])
        minimal = (int(0.9 * slots) - WORKER_PROCESS_PER_LOOP) // WORKER_PROCESS
        conn.execute(
            f'INSERT INTO "{namespace}".workers (id, host, pid, queues, concurrency, connections)'
            " SELECT 'w' || n, 'host', n, '{default}', 10, %s FROM generate_series(1, %s) AS n",
            (WORKER_PROCESS, minimal),
        )
        conn.execute(  # registered before migration 0020: no count
            f'INSERT INTO "{namespace}".workers (id, host, pid, queues, concurrency)'
            " VALUES ('old', 'host', 1, '{default}', 10)"
        )
        conn.execute(  # a worker gone silent long ago is not counted
            f'INSERT INTO "{namespace}".workers (id, host, pid, queues, concurrency, last_heartbeat_at)'
            " VALUES ('stale', 'host', 1, '{default}', 10, now() - interval '1 hour')"
        )
    run = run_stem(database_url, "doctor", "--namespace", namespace, "--json")
    (finding,) = [f for f in json.loads(run.stdout)["findings"] if f["check"] == "worker_connections"]
    assert finding["severity"] == "warn", finding
    processes, need = minimal + 1, minimal * WORKER_PROCESS + WORKER_PROCESS_PER_LOOP
    assert finding["detail"].startswith(
        f"{processes} running worker processes may open {need} connections of the {slots} the server allows"
    ), finding
    text = run_stem(database_url, "doctor", "--namespace", namespace)
    lines = [" ".join(x.split()) for x in text.stdout.splitlines()]
    assert any(x.startswith(f"WARN worker_connections fleet: {processes} running worker") for x in lines), (
        lines
    )


def test_a_missing_index_is_a_problem(database_url: str, namespace: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP INDEX "{namespace}".jobs_lease_idx')
    run = run_stem(database_url, "doctor", "--namespace", namespace)
    assert run.returncode == 1, run.stdout + run.stderr
    assert (
        "PROBLEM index_missing jobs_lease_idx: the migrations create this index; it is not there"
        in run.stdout
    )


def test_an_unmigrated_namespace_is_one_line(database_url: str, fresh_namespace: str) -> None:
    run = run_stem(database_url, "doctor", "--namespace", fresh_namespace)
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        f"error: namespace {fresh_namespace!r} is not migrated (or is at an older revision);"
        f" run: stem migrate --namespace {fresh_namespace}"
    ]
    assert "Traceback" not in run.stderr
