"""What a claim and a finish cost in index entries: the drain's budget.

A claim's UPDATE changes ``state`` and the lease columns, which indexes cover, so it is
never a HOT update: every index of ``jobs`` whose predicate the running row satisfies gets
an entry for the new row version. Each one costs every job claimed (the dashboard's
all-rows index of enqueue times took 10-20 % off a no-op drain until migration 0018 made it
cover waiting jobs only). An index added here is a cost to measure first (bench/).
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg import sql

from stem_pg.client.app import Stem


def _indexes_holding(conn: psycopg.Connection[Any], namespace: str, table: str, job_id: str) -> set[str]:
    """The indexes of ``table`` that hold an entry for the row of ``job_id``: those without a
    predicate, and those whose predicate the row satisfies."""
    rows = conn.execute(
        "SELECT c.relname, pg_get_expr(i.indpred, i.indrelid) FROM pg_index AS i"
        " JOIN pg_class AS c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass",
        (f'"{namespace}".{table}',),
    ).fetchall()
    holding = set()
    for name, predicate in rows:
        if predicate is None:
            holding.add(name)
            continue
        query = sql.SQL("SELECT {} FROM {}.{} WHERE id = %s").format(
            sql.SQL(predicate), sql.Identifier(namespace), sql.Identifier(table)
        )
        found = conn.execute(query, (job_id,)).fetchone()
        if found is not None and found[0]:
            holding.add(name)
    return holding


def test_a_claimed_job_has_entries_in_the_primary_key_and_the_lease_index_only(
    app: Stem, database_url: str, namespace: str
) -> None:
    job = app.enqueue("budget.task", {"n": 1})
    with psycopg.connect(database_url, autocommit=True) as conn:
        claimed = conn.execute(
            app.queries["job_claim"],
            {
                "queue": "default",
                "limit": 1,
                "worker_id": "w1",
                "token": str(uuid.uuid4()),
                "lease_seconds": 30,
                "tasks": None,
            },
        ).fetchall()
        assert [row[0] for row in claimed] == [job.id]
        assert _indexes_holding(conn, namespace, "jobs", job.id) == {"jobs_pkey", "jobs_lease_idx"}
