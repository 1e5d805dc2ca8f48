"""The claim in the flush: outcomes written and the next jobs leased in one transaction.

Every transaction's ``now()`` is its own, so a claim made in the transaction that wrote
outcomes leased its jobs at the very instant those outcomes finished: a job whose
``started_at`` is some result's ``finished_at`` was claimed by a flush.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from stem_pg.client.app import EnqueueRequest, Stem
from tests.helpers import running_worker, wait_for

JOBS = 600
CAPACITY = 40  # concurrency 20 x prefetch 2: many rounds of claims


def _drain(app: Stem, db: psycopg.Connection[Any], **settings: object) -> list[tuple[Any, ...]]:
    """Register a no-op task, enqueue ``JOBS``, drain them with a real worker; each
    claim's (started_at, jobs) and whether a flush made it (a result finished then)."""

    @app.task(name="noop")
    async def noop() -> None:
        return None

    app.enqueue_many([EnqueueRequest("noop")] * JOBS)
    ns = sql.Identifier(app.namespace)
    count = sql.SQL("SELECT count(*) FROM {}.results").format(ns)
    with running_worker(app, concurrency=20, prefetch_multiplier=2, **settings):
        wait_for(lambda: db.execute(count).fetchone() == (JOBS,), timeout=60, what="the drain")
    claims = sql.SQL(
        "SELECT c.started_at, c.n,"
        " EXISTS (SELECT 1 FROM {ns}.results AS f WHERE f.finished_at = c.started_at)"
        " FROM (SELECT started_at, count(*) AS n FROM {ns}.results GROUP BY started_at) AS c"
        " ORDER BY c.started_at"
    ).format(ns=ns)
    return db.execute(claims).fetchall()


def test_a_draining_worker_claims_in_the_transaction_that_writes_the_outcomes(
    app: Stem, db: psycopg.Connection[Any]
) -> None:
    """``--claim-in-flush``: with a backlog, the slots the finished jobs free are claimed by
    the flush that writes their outcomes, one commit for both (without it, the claim loop
    claims them apart, a second durable commit per round). No claim takes more than the
    worker's capacity."""
    claims = _drain(app, db, claim_in_flush=True)
    in_flush = [n for _, n, by_flush in claims if by_flush]
    assert sum(in_flush) >= JOBS // 2, claims  # most jobs after the first round
    assert max(n for _, n, _ in claims) <= CAPACITY, claims
    assert db.execute(
        sql.SQL("SELECT count(*) FROM {}.jobs").format(sql.Identifier(app.namespace))
    ).fetchone() == (0,)


def test_by_default_the_claim_loop_claims(app: Stem, db: psycopg.Connection[Any]) -> None:
    """Without ``--claim-in-flush`` every claim is a transaction of its own, as before."""
    claims = _drain(app, db)
    assert not [c for c in claims if c[2]], claims
    assert max(n for _, n, _ in claims) <= CAPACITY, claims


def test_a_worker_with_broadcast_channels_claims_in_the_claim_loop(
    app: Stem, db: psycopg.Connection[Any]
) -> None:
    """The claim loop takes broadcast messages before jobs: a flush taking every free slot
    would starve them, so with channels the flush does not claim."""
    claims = _drain(app, db, claim_in_flush=True, broadcasts=("control",))
    assert not [c for c in claims if c[2]], claims
