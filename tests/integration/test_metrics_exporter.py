"""The namespace exporter reads what SQL reads: each queue's depth and oldest ready age as
the queue_health view gives them, dead letters, workers alive and stale, schedule lag and
workflow runs by status, the rate and concurrency limits as limiter_state gives them (capped,
each limit before any group); a database it cannot reach makes stem_namespace_up 0."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from prometheus_client.samples import Sample

from stem_pg.client.app import Stem
from stem_pg.metrics import namespace as namespace_exporter
from stem_pg.metrics.namespace import NamespaceCollector
from tests.acceptance.workerapp import query
from tests.helpers import running_worker, wait_for
from tests.metrics_scrape import total


def collected(url: str, namespace: str) -> list[Sample]:
    return [s for family in NamespaceCollector(url, namespace).collect() for s in family.samples]


def test_exporter_matches_sql(
    app: Stem, db: psycopg.Connection[Any], namespace: str, database_url: str
) -> None:
    for n in range(3):
        app.enqueue("t.any", {"n": n}, queue="alpha")
    for _ in range(2):
        app.enqueue("t.any", queue="beta", countdown=3600)
    running = app.enqueue("t.any", queue="gamma").id
    query(
        db, namespace, "UPDATE {ns}.jobs SET state = 'running', started_at = now() WHERE id = %s", [running]
    )
    query(
        db, namespace, "UPDATE {ns}.jobs SET not_before = now() - interval '90 seconds' WHERE queue = 'alpha'"
    )
    query(db, namespace, "INSERT INTO {ns}.paused_queues (queue) VALUES ('idle')")
    for name, silent in (("w-alive", "0 seconds"), ("w-stale", "5 minutes")):
        query(
            db,
            namespace,
            "INSERT INTO {ns}.workers (id, host, pid, queues, concurrency, last_heartbeat_at)"
            " VALUES (%s, 'h', 1, %s, 1, now() - %s::interval)",
            [name, ["alpha", "delta"], silent],
        )
    query(
        db,
        namespace,
        "INSERT INTO {ns}.dead_letters (task_id, task, queue, priority, args, headers, max_retries,"
        " reason, attempts, enqueued_at) VALUES ('d1', 't.any', 'alpha', 0, '{{}}', '{{}}', 0,"
        " 'rejected', 1, now())",
    )
    query(
        db,
        namespace,
        "INSERT INTO {ns}.schedules (name, task, spec, next_run_at)"
        " VALUES ('late', 't.any', '{{}}', now() - interval '40 seconds')",
    )
    query(
        db,
        namespace,
        "INSERT INTO {ns}.wf_runs (id, workflow, queue, job_id) VALUES ('r1', 'wf', 'alpha', 'j')",
    )

    samples = collected(database_url, namespace)
    health = {
        r[0]: r[1:]
        for r in query(
            db, namespace, "SELECT queue, ready, scheduled, running, oldest_ready_age FROM {ns}.queue_health"
        )
    }
    assert set(health) == {"alpha", "beta", "gamma"}
    for queue, (ready, scheduled, running_jobs, age) in health.items():
        assert total(samples, "stem_queue_jobs", queue=queue, state="ready") == ready
        assert total(samples, "stem_queue_jobs", queue=queue, state="scheduled") == scheduled
        assert total(samples, "stem_queue_jobs", queue=queue, state="running") == running_jobs
        assert total(samples, "stem_queue_oldest_ready_age_seconds", queue=queue) == pytest.approx(
            age or 0, abs=1.0
        )
    assert (health["alpha"][0], health["beta"][1], health["gamma"][2]) == (3, 2, 1)
    assert health["alpha"][3] > 89
    # Idle queues that an alive worker consumes, or that are paused, are listed with zeros.
    queues = {s.labels["queue"] for s in samples if s.name == "stem_queue_jobs"}
    assert queues == {"alpha", "beta", "gamma", "delta", "idle"}
    assert total(samples, "stem_queue_jobs", queue="delta") == 0
    assert total(samples, "stem_queue_paused", queue="idle") == 1
    assert total(samples, "stem_queue_paused", queue="alpha") == 0
    assert total(samples, "stem_dead_letters", queue="alpha") == 1
    assert total(samples, "stem_workers", status="alive") == 1
    assert total(samples, "stem_workers", status="stale") == 1
    assert total(samples, "stem_schedules_overdue") == 1
    assert total(samples, "stem_schedule_lag_seconds") == pytest.approx(40, abs=5)
    assert total(samples, "stem_workflow_runs", status="running") == 1
    assert total(samples, "stem_workflow_runs", status="completed") == 0
    assert total(samples, "stem_namespace_up") == 1


def test_exporter_reports_the_limits_as_limiter_state_reads_them(
    app: Stem, db: psycopg.Connection[Any], namespace: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    @app.task(name="lm.rated", rate_limit="1/m")
    def rated(n: int) -> None: ...

    @app.task(name="lm.slots", concurrency_limit=3)
    def slots(n: int) -> None: ...

    @app.task(name="lm.keyed", concurrency_limit=2, concurrency_key="{tenant}")
    def tenant(tenant: str) -> None: ...

    def limiter_rows() -> int:
        return int(query(db, namespace, "SELECT count(*) FROM {ns}.limiter_state")[0][0])

    with running_worker(app, concurrency=1):  # the worker declares its tasks' limits
        wait_for(lambda: limiter_rows() == 3, 10, "the worker's three limiter rows")
    for n in range(4):
        app.enqueue("lm.rated", {"n": n})
        app.enqueue("lm.slots", {"n": n})
    for t in ("a", "a", "b"):
        app.enqueue("lm.keyed", {"tenant": t})
    # One job running under each concurrency limit (tenant a's group), the bucket emptied.
    query(
        db,
        namespace,
        "INSERT INTO {ns}.limiters (kind, scope, key, concurrency, key_field)"
        " VALUES ('concurrency', 'task:lm.keyed', 'a', 2, 'tenant')",
    )
    for task, limit_key in (("lm.slots", "task:lm.slots/"), ("lm.keyed", "task:lm.keyed/a")):
        query(
            db,
            namespace,
            "UPDATE {ns}.jobs SET state = 'running', started_at = now(), limit_key = %s"
            " WHERE id = (SELECT id FROM {ns}.jobs WHERE task = %s ORDER BY id LIMIT 1)",
            [limit_key, task],
        )
    query(db, namespace, "UPDATE {ns}.limiters SET tokens = 0, refilled_at = now() WHERE kind = 'rate'")

    samples = collected(database_url, namespace)
    state = query(
        db, namespace, "SELECT kind, scope, key, tokens, concurrency, running, ready FROM {ns}.limiter_state"
    )
    assert len(state) == 4
    for kind, scope, key, tokens, concurrency, running_jobs, ready in state:
        assert total(samples, "stem_limit_ready_jobs", limit=scope, key=key, kind=kind) == ready
        if kind == "rate":
            assert total(samples, "stem_limit_tokens", limit=scope, key=key) == pytest.approx(tokens, abs=0.1)
            assert not [s for s in samples if s.name == "stem_limit_running" and s.labels["limit"] == scope]
        else:
            assert total(samples, "stem_limit_running", limit=scope, key=key) == running_jobs
            assert total(samples, "stem_limit_capacity", limit=scope, key=key) == concurrency
    by_row = {(r[1], r[2]): r[3:] for r in state}
    assert by_row[("task:lm.rated", "")][0] < 0.1 and by_row[("task:lm.rated", "")][3] == 4
    assert by_row[("task:lm.slots", "")][1:] == (3, 1, 3)
    assert by_row[("task:lm.keyed", "")][1:] == (2, 1, 2)  # the limit's row counts every group
    assert by_row[("task:lm.keyed", "a")][1:] == (2, 1, 1)

    # Series are capped: every limit's own row first, then groups up to the cap.
    monkeypatch.setattr(namespace_exporter, "MAX_LIMITS", 3)
    capped = collected(database_url, namespace)
    keys = {(s.labels["limit"], s.labels["key"]) for s in capped if s.name == "stem_limit_ready_jobs"}
    assert keys == {("task:lm.rated", ""), ("task:lm.slots", ""), ("task:lm.keyed", "")}


def test_unreachable_database_reports_down(namespace: str) -> None:
    samples = collected("postgresql://nobody@127.0.0.1:1/none", namespace)
    assert total(samples, "stem_namespace_up") == 0
    assert not [s for s in samples if s.name == "stem_queue_jobs"]
