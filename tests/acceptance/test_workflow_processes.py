"""Durable workflows and chords with real worker processes: SIGKILL mid-run, a
worker restart during a durable sleep, events from the CLI, racing chord members."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from stem_pg import chord
from stem_pg.client.app import Stem
from tests.acceptance.wfapp import make_app
from tests.acceptance.workerapp import Workers, ledger_app, query, scalar, wait_registered
from tests.helpers import run_stem, wait_for

WF_APP = "tests.acceptance.wfapp:app"
RESCUE_WAIT = 30.0


@pytest.fixture(name="stem")
def stem_fixture(database_url: str, namespace: str, db: psycopg.Connection[Any]) -> Iterator[Stem]:
    """The workflow app (tests.acceptance.wfapp) in place of the ledger app (test_wf_cli uses it too)."""
    with ledger_app(make_app, database_url, namespace, db) as application:
        yield application


def run_status(db: psycopg.Connection[Any], ns: str, run_id: str) -> str | None:
    status: str | None = scalar(db, ns, "SELECT status FROM {ns}.workflow_runs WHERE id = %s", [run_id])
    return status


def ledger(db: psycopg.Connection[Any], ns: str, key: str) -> list[tuple[Any, ...]]:
    return query(db, ns, "SELECT n, pid, event FROM {ns}.ledger WHERE task_id = %s ORDER BY at", [key])


@pytest.mark.timeout(90)
def test_killed_after_step_three_resumes_on_another_worker_without_rerunning_steps(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    first = workers.start(app=WF_APP, lease=2.0)
    wait_registered(db, namespace, {first.pid})
    run = stem.start_workflow("acc.five_steps", {"hold": 60})
    wait_for(lambda: (4, first.pid, "step") in ledger(db, namespace, run.id), 20, "step 4 to start")

    first.signal(signal.SIGKILL)
    first.wait(timeout=10)
    second = workers.start(app=WF_APP, lease=2.0)
    assert run.get(timeout=RESCUE_WAIT + 20) == [1, 2, 3, 4, 5]

    rows = ledger(db, namespace, run.id)
    assert rows == [
        (1, first.pid, "step"),
        (2, first.pid, "step"),
        (3, first.pid, "step"),
        (4, first.pid, "step"),  # in flight when the worker died: it runs again
        (4, second.pid, "step"),
        (5, second.pid, "step"),
    ]
    steps = query(
        db, namespace, "SELECT step FROM {ns}.workflow_steps WHERE run_id = %s ORDER BY seq", [run.id]
    )
    assert [s for (s,) in steps] == [f"step-{n}" for n in range(1, 6)]


@pytest.mark.timeout(90)
def test_durable_sleep_holds_no_slot_and_survives_a_worker_restart(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    first = workers.start(app=WF_APP, concurrency=1)
    wait_registered(db, namespace, {first.pid})
    started = time.monotonic()
    run = stem.start_workflow("acc.nap", {"seconds": 3})
    wait_for(lambda: run_status(db, namespace, run.id) == "suspended", 15, "the run to suspend")
    # The worker's only slot is free while the run sleeps.
    assert stem.enqueue("acc.quick").get(timeout=5) == first.pid
    assert time.monotonic() - started < 3

    first.signal(signal.SIGTERM)
    assert first.wait(timeout=20) == 0
    second = workers.start(app=WF_APP, concurrency=1)
    assert run.get(timeout=30) == "rested"
    assert time.monotonic() - started >= 3
    assert ledger(db, namespace, run.id) == [(1, first.pid, "before"), (2, second.pid, "after")]


@pytest.mark.timeout(90)
def test_await_event_resumes_on_cli_emit_and_times_out_on_its_deadline(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str, database_url: str
) -> None:
    workers.start(app=WF_APP)
    waiting = stem.start_workflow("acc.approval", {"timeout": 60})
    short = stem.start_workflow("acc.approval", {"timeout": 1.5})
    assert short.get(timeout=20) == "timed out"
    wait_for(lambda: run_status(db, namespace, waiting.id) == "suspended", 15, "the run to wait")

    listed = run_stem(
        database_url, "wf", "waiters", "--topic", "approvals", "--json", STEM_WORKFLOW_NAMESPACE=namespace
    )
    assert listed.returncode == 0, listed.stderr
    assert waiting.id in listed.stdout and short.id not in listed.stdout
    payload = '{"by": "ann"}'
    emitted = run_stem(
        database_url, "wf", "emit", "approvals", "--payload", payload, STEM_WORKFLOW_NAMESPACE=namespace
    )
    assert emitted.returncode == 0, emitted.stderr
    assert "delivered to 1 run(s)" in emitted.stdout
    assert waiting.get(timeout=20) == {"by": "ann"}


@pytest.mark.timeout(120)
def test_chord_of_100_with_two_racing_workers_runs_its_callback_once_in_order(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    pids = {workers.start(app=WF_APP, concurrency=8).pid for _ in range(2)}
    wait_registered(db, namespace, pids)
    result = chord(
        [stem.signature("acc.member", n=n) for n in range(100)], stem.signature("acc.gather")
    ).delay()
    assert result.get(timeout=60) == list(range(100))
    time.sleep(1)  # room for a second callback, were there one
    callbacks = query(db, namespace, "SELECT task_id FROM {ns}.ledger WHERE event = 'callback'")
    assert callbacks == [(result.last.id,)]
    member_workers = scalar(
        db,
        namespace,
        "SELECT count(DISTINCT worker_id) FROM {ns}.results WHERE task = 'acc.member'",
    )
    assert member_workers == 2  # both workers finished members: they raced
    assert scalar(db, namespace, "SELECT state FROM {ns}.canvases WHERE id = %s", [result.id]) == "succeeded"
