"""The flusher against outcomes the database refuses: it bisects the batch down to the
refused row, fails that job with the database's error, and writes all the others.

The worker validates what it flushes (results, error texts), so these tests feed the
flusher raw outcomes that slipped past the checks, the way a future bug would.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import EnqueueRequest, Stem
from stem_pg.db.managed import ManagedConnection
from stem_pg.db.stores.broadcasts import BroadcastStore
from stem_pg.db.stores.jobs import JobStore
from stem_pg.db.stores.rows import ClaimedJob, Finish, Outcome, Release, RetryLater
from stem_pg.worker.broadcasts import BroadcastAcks
from stem_pg.worker.context import Inflight
from stem_pg.worker.flush import OutcomeFlusher

JOBS = 20
#: JSON text that jsonb refuses: the escape of a NUL character.
NUL_JSON = '"\\u0000"'


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as connection:
        yield connection


async def claim_all(app: Stem, conn: psycopg.AsyncConnection[Any], token: str) -> list[ClaimedJob]:
    ids = [f"job-{i:02d}" for i in range(JOBS)]
    app.enqueue_many(EnqueueRequest("t", task_id=task_id) for task_id in ids)
    store = JobStore(app.queries, result_ttl=60)
    claimed = await store.claim(
        conn, queue="default", limit=JOBS, worker_id="w1", token=token, lease_seconds=60
    )
    assert sorted(job.id for job in claimed) == ids
    return sorted(claimed, key=lambda job: job.id)


def flusher_for(app: Stem, database_url: str) -> OutcomeFlusher:
    acks = BroadcastAcks(BroadcastStore(app.queries), worker_id="w1")
    store = JobStore(app.queries, result_ttl=60)
    return OutcomeFlusher(store, acks, ManagedConnection(database_url, "test-flush"), worker_id="w1")


async def flush(flusher: OutcomeFlusher, claimed: Sequence[ClaimedJob], outcomes: Sequence[Outcome]) -> None:
    for job, outcome in zip(claimed, outcomes, strict=True):
        flusher.add(Inflight(job, outcome.token, 60.0), outcome)
    try:
        await flusher.flush_once()
    finally:
        await flusher.managed.discard()


async def rows(conn: psycopg.AsyncConnection[Any], app: Stem, text: str) -> list[tuple[Any, ...]]:
    cur = await conn.execute(sql.SQL(text).format(ns=sql.Identifier(app.namespace)))
    return await cur.fetchall()


async def test_a_refused_result_fails_its_own_job_and_the_rest_of_the_batch_is_written(
    app: Stem, database_url: str, conn: psycopg.AsyncConnection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    token = str(uuid.uuid4())
    claimed = await claim_all(app, conn, token)
    outcomes = [Finish(job.id, token, "succeeded", result=str(i)) for i, job in enumerate(claimed)]
    outcomes[13] = Finish(claimed[13].id, token, "succeeded", result=NUL_JSON)
    flusher = flusher_for(app, database_url)

    with caplog.at_level(logging.INFO, logger="stem_pg.worker.flush"):
        await flush(flusher, claimed, outcomes)

    assert await rows(conn, app, "SELECT count(*) FROM {ns}.jobs") == [(0,)]
    results = await rows(conn, app, "SELECT id, state, result, error FROM {ns}.results ORDER BY id")
    expected: list[tuple[Any, ...]] = [(job.id, "succeeded", i, None) for i, job in enumerate(claimed)]
    expected[13] = (
        "job-13",
        "failed",
        None,
        "the database refused to store the outcome: UntranslatableCharacter:"
        " unsupported Unicode escape sequence (\\u0000 cannot be converted to text.)",
    )
    assert results == expected
    assert await rows(conn, app, "SELECT task_id, reason FROM {ns}.dead_letters") == [("job-13", "rejected")]
    assert "job job-13: outcome refused: UntranslatableCharacter" in caplog.text
    assert "dropping" not in caplog.text
    assert flusher.outcomes == [] and flusher.unflushed == {} and flusher.refused_ids == set()


async def test_refused_retries_and_releases_are_found_among_a_mixed_batch(
    app: Stem, database_url: str, conn: psycopg.AsyncConnection[Any]
) -> None:
    """Finishes, retries and releases go in one transaction; psycopg itself refuses a NUL in
    a text parameter (a retry's error), the database a NUL escape in a result."""
    token = str(uuid.uuid4())
    claimed = await claim_all(app, conn, token)
    outcomes: list[Outcome] = []
    for i, job in enumerate(claimed):
        if i % 3 == 0:
            outcomes.append(Finish(job.id, token, "succeeded", result="1"))
        elif i % 3 == 1:
            outcomes.append(RetryLater(job.id, token, 30.0, "try again"))
        else:
            outcomes.append(Release(job.id, token))
    outcomes[4] = RetryLater(claimed[4].id, token, 30.0, "boom \x00 in a message")
    outcomes[9] = Finish(claimed[9].id, token, "succeeded", result='{"a":"\\ud800"}')
    flusher = flusher_for(app, database_url)

    await flush(flusher, claimed, outcomes)

    assert flusher.outcomes == [] and flusher.unflushed == {}
    failed = await rows(conn, app, "SELECT id, error FROM {ns}.results WHERE state = 'failed' ORDER BY id")
    assert [task_id for task_id, _ in failed] == ["job-04", "job-09"]
    assert "DataError" in failed[0][1] and "NUL" in failed[0][1]
    assert "Unicode low surrogate must follow a high surrogate" in failed[1][1]
    succeeded = await rows(conn, app, "SELECT count(*) FROM {ns}.results WHERE state = 'succeeded'")
    assert succeeded == [(6,)]  # 0, 3, ..., 18 but job-09
    back = await rows(conn, app, "SELECT state, count(*) FROM {ns}.jobs WHERE lease_token IS NULL GROUP BY 1")
    assert sorted(back) == [("queued", 6), ("retried", 6)]  # released; retried (without job-04)
    assert await rows(conn, app, "SELECT count(*) FROM {ns}.jobs") == [(12,)]


async def test_an_outcome_whose_failure_is_refused_too_is_logged_and_left_to_the_rescuer(
    app: Stem, database_url: str, conn: psycopg.AsyncConnection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A results trigger refuses every row of one job: neither its outcome nor the failure
    written instead can be stored. The flusher says so and stops trying; the others land."""
    ns = sql.Identifier(app.namespace)
    await conn.execute(
        sql.SQL(
            "CREATE FUNCTION {ns}.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.id = 'job-07' THEN RAISE EXCEPTION 'not this one' USING ERRCODE = 'check_violation';"
            " END IF; RETURN NEW; END $$"
        ).format(ns=ns)
    )
    await conn.execute(
        sql.SQL(
            "CREATE TRIGGER refuse BEFORE INSERT ON {ns}.results FOR EACH ROW EXECUTE FUNCTION {ns}.refuse()"
        ).format(ns=ns)
    )
    token = str(uuid.uuid4())
    claimed = await claim_all(app, conn, token)
    outcomes = [Finish(job.id, token, "succeeded", result="1") for job in claimed]
    flusher = flusher_for(app, database_url)

    with caplog.at_level(logging.INFO, logger="stem_pg.worker.flush"):
        await flush(flusher, claimed, outcomes)

    assert await rows(conn, app, "SELECT count(*) FROM {ns}.results") == [(JOBS - 1,)]
    left = await rows(conn, app, "SELECT id, state FROM {ns}.jobs")
    assert left == [("job-07", "running")]  # its lease expires; the rescuer takes it from there
    assert "job job-07: outcome refused: CheckViolation: not this one" in caplog.text
    assert (
        "job job-07: the database refused to record its failure too (CheckViolation: not this one)"
        in caplog.text
    )
    assert flusher.outcomes == [] and flusher.unflushed == {} and flusher.refused_ids == set()


class ClaimInTheFlush:
    """A claim made in the flush's transaction (as the limited claims make one): it writes
    a row of its own, so that a test sees whether it was committed with the outcomes."""

    def __init__(self, app: Stem, *, fail: bool = False) -> None:
        self.app, self.fail = app, fail
        self.started = 0
        self.abandoned = 0  # times the flush told it its transaction failed

    def claim_wanted(self) -> bool:
        return True

    async def claim_in_flush(self, conn: psycopg.AsyncConnection[Any]) -> Callable[[], Awaitable[None]]:
        assert conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        ns = sql.Identifier(self.app.namespace)
        await conn.execute(sql.SQL("INSERT INTO {ns}.claimed_here VALUES (1)").format(ns=ns))
        if self.fail:
            await conn.execute("SELECT 1 / 0")

        async def start() -> None:
            self.started += 1

        return start

    def claim_abandoned(self) -> None:
        self.abandoned += 1


@pytest.mark.parametrize("refuse", ["outcome", "claim", "nothing"])
async def test_a_claim_in_the_flush_is_committed_with_the_outcomes_or_not_at_all(
    app: Stem, database_url: str, conn: psycopg.AsyncConnection[Any], refuse: str
) -> None:
    await conn.execute(
        sql.SQL("CREATE TABLE {ns}.claimed_here (n int)").format(ns=sql.Identifier(app.namespace))
    )
    token = str(uuid.uuid4())
    claimed = await claim_all(app, conn, token)
    outcomes = [Finish(job.id, token, "succeeded", result="1") for job in claimed]
    if refuse == "outcome":
        outcomes[5] = Finish(claimed[5].id, token, "succeeded", result=NUL_JSON)
    flusher = flusher_for(app, database_url)
    flusher.claim = claiming = ClaimInTheFlush(app, fail=refuse == "claim")

    await flush(flusher, claimed, outcomes)

    # Either way every outcome is written (a refused one as a failure) ...
    assert flusher.outcomes == [] and flusher.unflushed == {}
    assert await rows(conn, app, "SELECT count(*) FROM {ns}.results") == [(JOBS,)]
    failed = await rows(conn, app, "SELECT id FROM {ns}.results WHERE state = 'failed'")
    assert failed == ([("job-05",)] if refuse == "outcome" else [])
    # ... and the claim counts only when its transaction committed with them.
    done = 1 if refuse == "nothing" else 0
    assert await rows(conn, app, "SELECT count(*) FROM {ns}.claimed_here") == [(done,)]
    assert claiming.started == done
    assert claiming.abandoned == 1 - done  # told, so that the slots it reserved are free again
