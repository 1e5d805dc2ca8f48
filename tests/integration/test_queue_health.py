"""The ``queue_health`` view (migration 0010) against numbers computed by hand for seeded jobs."""

from __future__ import annotations

import math
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

Db = psycopg.Connection[tuple[Any, ...]]

# queue, state, seconds since it finished, wait (enqueued -> started), run (started -> finished)
RESULTS = [
    ("q1", "succeeded", 20, 2.0, 1.0),
    ("q1", "failed", 25, 4.0, 3.0),
    ("q1", "succeeded", 180, 10.0, 5.0),
    ("q1", "cancelled", 600, 20.0, 8.0),
    ("q1", "failed", 1200, 100.0, 100.0),  # older than 15 minutes: not counted
    ("q2", "succeeded", 120, 1.5, 0.5),
]
# queue, state, seconds until it may run (negative: ready since)
JOBS = [
    ("q1", "queued", -120),
    ("q1", "queued", -30),
    ("q1", "retried", -60),
    ("q1", "queued", 3600),
    ("q1", "running", -10),
    ("q3", "running", -5),
]


def _percentile(values: list[float], fraction: float) -> float | None:
    """Postgres' percentile_cont: linear interpolation between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _expected_recent(queue: str) -> dict[str, Any]:
    mine = [r for r in RESULTS if r[0] == queue and r[2] < 900]
    expected: dict[str, Any] = {}
    for minutes in (1, 5, 15):
        window = [r for r in mine if r[2] < minutes * 60]
        expected[f"finished_{minutes}m"] = len(window)
        for column, values in (("wait", [r[3] for r in window]), ("run", [r[4] for r in window])):
            expected[f"{column}_p50_{minutes}m"] = _percentile(values, 0.5)
            expected[f"{column}_p95_{minutes}m"] = _percentile(values, 0.95)
    failed = sum(1 for r in mine if r[1] == "failed")
    expected["failed_15m"] = failed
    expected["failure_rate_15m"] = failed / len(mine) if mine else None
    return expected


def _seed(db: Db, namespace: str) -> None:
    ns = sql.Identifier(namespace)
    for i, (queue, state, ago, wait, run) in enumerate(RESULTS):
        db.execute(
            sql.SQL(
                "INSERT INTO {}.results (id, task, queue, priority, state, attempts, enqueued_at,"
                " started_at, finished_at)"
                " SELECT %(id)s, 't', %(queue)s, 0, %(state)s, 1,"
                " f - make_interval(secs => %(run)s + %(wait)s),"
                " f - make_interval(secs => %(run)s), f"
                " FROM (SELECT now() - make_interval(secs => %(ago)s) AS f) AS t"
            ).format(ns),
            {"id": f"r{i}", "queue": queue, "state": state, "ago": ago, "wait": wait, "run": run},
        )
    for i, (queue, state, delay) in enumerate(JOBS):
        db.execute(
            sql.SQL(
                "INSERT INTO {}.jobs (id, task, queue, state, not_before, enqueued_at, started_at)"
                " VALUES (%(id)s, 't', %(queue)s, %(state)s, now() + make_interval(secs => %(delay)s),"
                " now() - interval '1 hour', CASE WHEN %(state)s = 'running' THEN now() END)"
            ).format(ns),
            {"id": f"j{i}", "queue": queue, "state": state, "delay": delay},
        )


def test_queue_health_matches_hand_computed_numbers(db: Db, namespace: str) -> None:
    _seed(db, namespace)
    query = sql.SQL("SELECT * FROM {}.queue_health ORDER BY queue").format(sql.Identifier(namespace))
    with db.cursor(row_factory=dict_row) as cur:
        rows = {row["queue"]: row for row in cur.execute(query).fetchall()}
    assert sorted(rows) == ["q1", "q2", "q3"]

    q1 = rows["q1"]
    assert (q1["ready"], q1["scheduled"], q1["running"]) == (3, 1, 1)
    assert q1["oldest_ready_age"] == pytest.approx(120, abs=5)
    for queue in ("q1", "q2"):
        for column, value in _expected_recent(queue).items():
            assert rows[queue][column] == pytest.approx(value), (queue, column)
    assert q1["failure_rate_15m"] == pytest.approx(0.25)  # 1 failed of 4 finished; the older one is out

    q2 = rows["q2"]  # only finished jobs: no live depth, no age
    assert (q2["ready"], q2["scheduled"], q2["running"], q2["oldest_ready_age"]) == (0, 0, 0, None)
    q3 = rows["q3"]  # only a running job: nothing finished, no rate
    assert (q3["running"], q3["finished_15m"], q3["failure_rate_15m"], q3["wait_p50_15m"]) == (
        1,
        0,
        None,
        None,
    )


def test_queue_health_reads_recent_results_through_the_finished_index(db: Db, namespace: str) -> None:
    """Its cost: the result history is read by results_finished_idx, not scanned whole."""
    ns = sql.Identifier(namespace)
    db.execute(
        sql.SQL(
            "INSERT INTO {}.results (id, task, queue, priority, state, attempts, enqueued_at, finished_at)"
            " SELECT 'old' || g, 't', 'q', 0, 'succeeded', 1, now() - interval '2 days',"
            " now() - interval '1 day' - make_interval(secs => g) FROM generate_series(1, 20000) AS g"
        ).format(ns)
    )
    db.execute(sql.SQL("ANALYZE {}.results").format(ns))
    plan = "\n".join(
        row[0] for row in db.execute(sql.SQL("EXPLAIN SELECT * FROM {}.queue_health").format(ns)).fetchall()
    )
    assert "results_finished_idx" in plan, plan
