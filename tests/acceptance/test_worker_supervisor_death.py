"""SIGKILL of a ``stem worker run --processes 2`` supervisor: its children stop within 2 s
instead of claiming on as orphans, give back the jobs they held (queued again), and a new
worker runs each of them once, never while an orphan still runs it."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import EnqueueRequest, Stem
from tests.acceptance.workerapp import Workers, query, registered_pids, scalar
from tests.helpers import wait_for

LEASE = 30.0  # far longer than the test: only a give-back can put the jobs back in time
GRACE = 0.5  # the children's running tasks (60 s) are interrupted after this
GONE_WITHIN = 2.0


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie no one reaped yet has ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def ledger(db: psycopg.Connection[Any], ns: str, ids: list[str]) -> list[tuple[Any, ...]]:
    text = "SELECT task_id, event, pid, attempt, at FROM {ns}.ledger WHERE task_id = ANY(%s) ORDER BY at"
    return query(db, ns, text, [ids])


@pytest.mark.timeout(90)
def test_children_of_a_killed_supervisor_stop_and_give_their_jobs_back(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    extra = ["--shutdown-grace", str(GRACE), "--prefetch-multiplier", "1"]
    supervisor = workers.start(processes=2, concurrency=2, lease=LEASE, extra=extra)
    wait_for(lambda: len(registered_pids(db, namespace)) == 2, 30, "two worker processes")
    children = registered_pids(db, namespace)
    assert supervisor.pid not in children
    requests = (EnqueueRequest("acc.step", {"n": n, "sleeps": [60, 0.05]}) for n in range(4))
    ids = [r.id for r in stem.enqueue_many(requests)]
    # Two processes x concurrency 2 (no prefetch) run the four jobs, two each.
    wait_for(lambda: len(ledger(db, namespace, ids)) == 4, 20, f"four jobs to start\n{supervisor.log()}")
    running_pids = {pid for _, _, pid, _, _ in ledger(db, namespace, ids)}
    assert running_pids == children

    supervisor.signal(signal.SIGKILL)
    killed = time.monotonic()
    supervisor.wait(timeout=5)
    wait_for(
        lambda: not any(alive(pid) for pid in children),
        GONE_WITHIN,
        f"the orphaned children {sorted(children)} to exit\n{supervisor.log()}",
    )
    gone_after = time.monotonic() - killed
    assert gone_after < GONE_WITHIN
    assert supervisor.log(None).count("its supervisor is gone; stopping") == 2, supervisor.log()

    # Every job is back in the queue, no lease left, to be retried (the attempt counted).
    rows = query(
        db, namespace, "SELECT state, worker_id, lease_token FROM {ns}.jobs WHERE id = ANY(%s)", [ids]
    )
    assert rows == [("retried", None, None)] * 4
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.workers WHERE stopped_at IS NULL") == 0

    replacement = workers.start(concurrency=4)
    try:
        wait_for(
            lambda: scalar(db, namespace, "SELECT count(*) FROM {ns}.results WHERE id = ANY(%s)", [ids]) == 4,
            30,
            "the replacement worker to run the four jobs",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{replacement.log()}") from None
    events = ledger(db, namespace, ids)
    for job in ids:
        runs = [(event, pid) for task, event, pid, _, _ in events if task == job]
        # The orphan's run, cut short, then the replacement's, which began after it died.
        assert runs == [("started", runs[0][1]), ("started", replacement.pid), ("finished", replacement.pid)]
        assert runs[0][1] in children
    states = query(db, namespace, "SELECT state, attempts FROM {ns}.results WHERE id = ANY(%s)", [ids])
    assert states == [("succeeded", 2)] * 4
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.jobs WHERE id = ANY(%s)", [ids]) == 0
