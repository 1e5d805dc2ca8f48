"""A sync handler past its hard time limit retires its worker process (its thread cannot
be stopped): the jobs behind it start at once in a fresh process, and its retry never
runs while the first attempt still does. ``--max-tasks-per-child`` and
``--max-memory-per-child`` recycle processes the same way."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import EnqueueRequest, Stem
from stem_pg.worker.recycle import resident_kib
from tests.acceptance.limitsapp import make_limits_app, read_notes
from tests.acceptance.workerapp import Workers, query, wait_registered
from tests.helpers import run_stem, wait_for

APP = "tests.acceptance.limitsapp:app"
TIME_LIMIT = 1.0


@pytest.fixture
def lapp(database_url: str, namespace: str) -> Iterator[Stem]:
    application = make_limits_app(database_url, namespace)
    try:
        yield application
    finally:
        application.close()


def results(db: psycopg.Connection[Any], ns: str, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    rows = query(db, ns, "SELECT id, state, attempts, worker_id FROM {ns}.results WHERE id = ANY(%s)", [ids])
    return {r[0]: tuple(r[1:]) for r in rows}


def wait_done(db: psycopg.Connection[Any], ns: str, ids: list[str], timeout: float, workers: Workers) -> None:
    wait_for(
        lambda: len(results(db, ns, ids)) == len(ids),
        timeout,
        f"{len(ids)} jobs to finish; worker logs:\n{workers.logs()}",
    )


def attempts(notes: list[dict[str, Any]], task_id: str) -> dict[int, tuple[float, float, set[int]]]:
    """Per attempt of ``task_id``: its first and last sign of life, and the pids it ran in."""
    spans: dict[int, tuple[float, float, set[int]]] = {}
    for note in notes:
        if note["id"] != task_id:
            continue
        first, last, pids = spans.get(note["attempt"], (note["t"], note["t"], set()))
        spans[note["attempt"]] = (min(first, note["t"]), max(last, note["t"]), pids | {note["pid"]})
    return spans


@pytest.mark.timeout(120)
@pytest.mark.parametrize("processes", [1, 2])
def test_overrunning_sync_task_retires_the_process(
    lapp: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str, tmp_path: Path, processes: int
) -> None:
    path = tmp_path / "notes.jsonl"
    proc = workers.start(app=APP, processes=processes, concurrency=2, lease=5.0)
    if processes == 1:
        wait_registered(db, namespace, {proc.pid})
    else:
        wait_for(lambda: len(query(db, namespace, "SELECT 1 FROM {ns}.workers")) == processes, 20, "children")
    # Two handlers sleep 25 s on their first attempt, past their 1 s limit, filling both slots.
    sleepers = [lapp.enqueue("lim.sleepy", {"path": str(path), "sleeps": [25, 0.2]}).id for _ in range(2)]
    wait_for(lambda: len({n["id"] for n in read_notes(path)}) == 2, 20, "both sleepers to start")
    quick = [
        r.id for r in lapp.enqueue_many(EnqueueRequest("lim.quick", {"path": str(path)}) for _ in range(6))
    ]

    wait_done(db, namespace, sleepers + quick, 60, workers)
    notes = read_notes(path)
    done = results(db, namespace, sleepers + quick)
    assert {job: done[job][:2] for job in sleepers} == {job: ("succeeded", 2) for job in sleepers}
    assert Counter(n["id"] for n in notes if n["event"] == "start" and n["id"] in quick) == dict.fromkeys(
        quick, 1
    )

    limit_passed = max(attempts(notes, job)[1][0] for job in sleepers) + TIME_LIMIT
    quick_starts = [n["t"] for n in notes if n["id"] in quick and n["event"] == "start"]
    # Every quick job started within 2 s of the limit (some before it, in the other process).
    assert max(quick_starts) - limit_passed < 2.0, (max(quick_starts) - limit_passed, workers.logs())
    for job in sleepers:
        spans = attempts(notes, job)
        _, first_last_alive, first_pids = spans[1]
        second_start = spans[2][0]
        assert second_start > first_last_alive, (
            f"the retry of {job} started {first_last_alive - second_start:.2f}s before its first"
            f" attempt (pids {first_pids}) stopped running"
        )
    assert proc.alive()
    assert "retiring" in proc.log(None)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("processes", [1, 2])
def test_max_tasks_per_child_recycles_processes(
    lapp: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str, tmp_path: Path, processes: int
) -> None:
    path = tmp_path / "notes.jsonl"
    proc = workers.start(app=APP, processes=processes, concurrency=2, extra=["--max-tasks-per-child", "5"])
    ids = [
        r.id for r in lapp.enqueue_many(EnqueueRequest("lim.quick", {"path": str(path)}) for _ in range(20))
    ]

    wait_done(db, namespace, ids, 60, workers)
    notes = read_notes(path)
    starts = [n for n in notes if n["event"] == "start"]
    assert Counter(n["id"] for n in starts) == dict.fromkeys(ids, 1), (notes, workers.logs(None))
    done = results(db, namespace, ids)
    assert {state for state, _, _ in done.values()} == {"succeeded"}
    pids = Counter(n["pid"] for n in starts)
    if processes == 1:  # the process re-executes itself: same pid, a fresh worker id each time
        assert set(pids) == {proc.pid}
        runs = Counter(worker_id for _, _, worker_id in done.values())
    else:  # the supervisor forks a fresh child (same worker id) in place of each retired one
        runs = pids
    assert max(runs.values()) <= 5, runs
    assert len(runs) >= 4, runs
    assert proc.alive()


@pytest.mark.timeout(120)
def test_max_memory_per_child_replaces_a_bloated_process(
    lapp: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str, tmp_path: Path
) -> None:
    path = tmp_path / "notes.jsonl"
    # A fair baseline: this test process has the app loaded too; but after a long session it
    # holds far more than a fresh worker, so at most 150 MiB of it (a lean worker is ~45-60
    # MiB). The limit is then at most 250 MiB: the hog's 400 MiB passes it whatever the
    # worker's own size (with 200 MiB, a 45 MiB worker stayed under a 250 MiB limit).
    limit_kib = min(resident_kib(), 150 * 1024) + 100 * 1024
    proc = workers.start(
        app=APP, processes=2, concurrency=1, extra=["--max-memory-per-child", str(limit_kib)]
    )
    wait_for(lambda: len(query(db, namespace, "SELECT 1 FROM {ns}.workers")) == 2, 20, "children")
    small = [
        r.id for r in lapp.enqueue_many(EnqueueRequest("lim.quick", {"path": str(path)}) for _ in range(4))
    ]
    wait_done(db, namespace, small, 30, workers)
    hog = lapp.enqueue("lim.hog", {"path": str(path), "mib": 400}).id
    wait_done(db, namespace, [hog], 30, workers)
    hog_pid = next(n["pid"] for n in read_notes(path) if n["id"] == hog)

    wait_for(lambda: not _alive(hog_pid), 30, f"the bloated process {hog_pid} to retire:\n{workers.logs()}")
    wait_for(
        lambda: len(query(db, namespace, "SELECT 1 FROM {ns}.workers WHERE stopped_at IS NULL")) == 2,
        20,
        "a replacement",
    )
    after = [
        r.id for r in lapp.enqueue_many(EnqueueRequest("lim.quick", {"path": str(path)}) for _ in range(6))
    ]
    wait_done(db, namespace, after, 30, workers)
    assert hog_pid not in {n["pid"] for n in read_notes(path) if n["id"] in after}
    assert proc.alive()
    assert "--max-memory-per-child" in proc.log(None)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(
    ("flag", "value"), [("--max-tasks-per-child", "0"), ("--max-memory-per-child", "-5")]
)
def test_bad_recycling_values_fail_in_one_line(database_url: str, flag: str, value: str) -> None:
    done = run_stem(database_url, "worker", "run", "--app", APP, flag, value)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {flag} must be a whole number of at least 1, got {int(value)}"
    ]
