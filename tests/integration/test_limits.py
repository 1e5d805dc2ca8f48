"""Rate and concurrency limits, enforced by the limited claim (migration 0013), with real
workers (each on its own event loop thread) against the real Postgres.

Handlers record when they start and end (``time.monotonic``, one process), so each test
checks what ran at once, or how many started in a window, as a ledger.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.client.control import Control
from stem_pg.config.settings import StemConfig
from stem_pg.core.limits import claim_plan, declared_limits
from stem_pg.core.routing import RoutingConfig
from stem_pg.db.stores.limits import LimitStore
from stem_pg.worker import flush
from tests.helpers import running_worker, wait_for


class Ledger:
    """Starts and ends of handler runs, by label."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.starts: list[tuple[float, str]] = []
        self.ends: list[tuple[float, str]] = []
        self.running = 0
        self.peak = 0

    def run(self, label: str, seconds: float) -> None:
        with self.lock:
            self.starts.append((time.monotonic(), label))
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(seconds)
        with self.lock:
            self.running -= 1
            self.ends.append((time.monotonic(), label))

    def started(self, label: str | None = None) -> list[float]:
        with self.lock:
            return [at for at, name in self.starts if label is None or name == label]


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def limited(database_url: str, namespace: str, ledger: Ledger) -> Iterator[Stem]:
    stem = Stem(database_url, namespace=namespace, config=StemConfig())

    @stem.task(name="lim.rated", rate_limit="20/s")
    def rated(n: int) -> None:
        ledger.run("rated", 0)

    @stem.task(name="lim.slots", concurrency_limit=2)
    def slots(n: int, sleep: float = 0.2) -> None:
        ledger.run("slots", sleep)

    @stem.task(name="lim.tenant", concurrency_limit=1, concurrency_key="{tenant}")
    def tenant(tenant: str, sleep: float = 0.02) -> None:
        ledger.run(tenant, sleep)

    @stem.task(name="lim.grouped", group_rate_limit="5/s", group_rate_key="tenant")
    def grouped(tenant: str) -> None:
        ledger.run(f"grouped-{tenant}", 0)

    @stem.task(name="lim.open", rate_limit="1/h")
    def fail_open(n: int) -> None:
        ledger.run("open", 0)

    @stem.task(name="lim.closed", rate_limit="100/s", limits_fail_open=False)
    def fail_closed(n: int) -> None:
        ledger.run("closed", 0)

    @stem.task(name="lim.free")
    def free(n: int) -> None:
        ledger.run("free", 0)

    yield stem
    stem.close()


def _scalar(database_url: str, namespace: str, text: str, *params: Any) -> Any:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(sql.SQL(text).format(ns=sql.Identifier(namespace)), params).fetchone()
        return row[0] if row else None


def test_a_rate_limit_spaces_the_starts_and_leaves_the_rest_queued(limited: Stem, ledger: Ledger) -> None:
    limited.enqueue_many([("lim.rated", {"n": n}) for n in range(30)])
    with running_worker(limited, concurrency=20, poll_interval=5.0):
        wait_for(lambda: len(ledger.started("rated")) >= 30, 10, "30 rate-limited starts")
    starts = sorted(ledger.started("rated"))
    # A bucket of 2 (0.1 s worth) refilled at 20 a second: 30 starts take >= 1.4 s, and no
    # second holds more than 20 + 2 (a poll interval of 5 s: the worker woke for the tokens).
    assert starts[-1] - starts[0] >= 1.3
    assert starts[-1] - starts[0] <= 3.0
    for first in starts:
        assert sum(1 for at in starts if first <= at < first + 1.0) <= 22


def test_a_concurrency_limit_holds_across_workers_and_a_finish_wakes_them(
    limited: Stem, ledger: Ledger
) -> None:
    limited.enqueue_many([("lim.slots", {"n": n}) for n in range(8)])
    began = time.monotonic()
    # Two workers, 10 slots each, polling every 5 s: only the NOTIFY after a limited job's
    # flush can start the next one in time.
    with (
        running_worker(limited, concurrency=10, poll_interval=5.0),
        running_worker(limited, concurrency=10, poll_interval=5.0),
    ):
        wait_for(lambda: len(ledger.ends) >= 8, 15, "8 jobs to finish")
    assert ledger.peak == 2
    assert time.monotonic() - began < 4.5  # 8 x 0.2 s / 2 = 0.8 s of work, no poll waits


def test_a_finished_limited_job_costs_one_claim_after_its_flush(
    limited: Stem, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The slot is free only once the outcome is written: a claim before that finds the
    # limit full (a wasted round trip holding the limiter row); the flush wakes the claim.
    claims: list[int] = []
    claim = LimitStore.send_claim

    async def counted(self: LimitStore, conn: Any, **kwargs: Any) -> Any:
        claims.append(kwargs["limit"])
        return await claim(self, conn, **kwargs)

    monkeypatch.setattr(LimitStore, "send_claim", counted)
    limited.enqueue_many([("lim.slots", {"n": n, "sleep": 0.05}) for n in range(8)])
    with running_worker(limited, concurrency=10, poll_interval=5.0):
        wait_for(lambda: len(ledger.ends) >= 8, 10, "8 jobs to finish")
    assert ledger.peak == 2
    assert len(claims) <= 8, claims  # the first, then at most one per flushed finish (12-16 before)


def test_a_finish_that_frees_a_slot_and_the_next_claim_share_one_transaction(
    limited: Stem, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hand-off of a concurrency slot: the flush that writes the finish claims the next
    # job in its own transaction (one commit, no hop to the claim loop).
    in_transaction: list[bool] = []
    claim = LimitStore.send_claim

    async def watched(self: LimitStore, conn: Any, **kwargs: Any) -> Any:
        in_transaction.append(conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)
        return await claim(self, conn, **kwargs)

    monkeypatch.setattr(LimitStore, "send_claim", watched)
    limited.enqueue_many([("lim.slots", {"n": n, "sleep": 0.05}) for n in range(8)])
    with running_worker(limited, concurrency=10, poll_interval=5.0):
        wait_for(lambda: len(ledger.ends) >= 8, 10, "8 jobs to finish")
    assert ledger.peak == 2
    # The first claim (2 jobs) is the claim loop's; the 6 that follow finishes, the flush's
    # (a flush that wrote two finishes at once claims for both).
    assert in_transaction[0] is False
    assert sum(in_transaction) >= 3, in_transaction
    assert len(in_transaction) <= 8, in_transaction


def test_a_claim_in_a_flush_that_finds_the_limiter_busy_has_the_claim_loop_look_again(
    limited: Stem, ledger: Ledger, database_url: str, namespace: str
) -> None:
    # Two slots: A (short) and B (long) run, C waits. The limiter row is held by another
    # claim (here: the test) as A finishes, so the claim in A's flush gets nothing; the
    # claim loop must look again soon (not at its next poll, 5 s away, nor when B ends).
    limited.enqueue("lim.slots", {"n": 1, "sleep": 0.3})
    limited.enqueue("lim.slots", {"n": 2, "sleep": 4.0})
    with running_worker(limited, concurrency=10, poll_interval=5.0):
        wait_for(lambda: len(ledger.started("slots")) == 2, 10, "A and B to start")
        limited.enqueue("lim.slots", {"n": 3, "sleep": 0})
        with psycopg.connect(database_url) as holder:
            holder.execute(
                sql.SQL("SELECT 1 FROM {}.limiters WHERE kind = 'concurrency' FOR UPDATE").format(
                    sql.Identifier(namespace)
                )
            )
            wait_for(lambda: len(ledger.ends) == 1, 10, "A to end")
            time.sleep(0.3)  # A's flush and its claim are done meanwhile
            released = time.monotonic()
        wait_for(lambda: len(ledger.started("slots")) == 3, 10, "C to start")
    assert ledger.started("slots")[2] - released < 1.5


def test_a_finish_that_frees_a_slot_ends_the_flush_s_linger(
    limited: Stem, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A busy worker's flush lingers after its last write (20 ms; 30 s here, so that it
    # shows). A finish that frees a concurrency slot is written at once all the same: the
    # next job may take the slot only then, here or on another worker.
    monkeypatch.setattr(flush, "FLUSH_LINGER", 30.0)
    limited.enqueue("lim.free", {"n": 0})
    with running_worker(limited, concurrency=10, poll_interval=5.0):
        wait_for(lambda: len(ledger.ends) == 1, 10, "the first job (written at once, after a quiet spell)")
        time.sleep(0.2)  # written: the next flush lingers
        limited.enqueue("lim.free", {"n": 1})  # its outcome waits out the linger
        limited.enqueue_many([("lim.slots", {"n": n, "sleep": 0.3}) for n in range(3)])  # 2 slots
        wait_for(lambda: len(ledger.started("slots")) == 3, 10, "the third job to take a freed slot")


def test_a_keyed_limit_is_fair_across_keys(limited: Stem, ledger: Ledger) -> None:
    limited.enqueue_many([("lim.tenant", {"tenant": "a"}) for _ in range(300)])
    limited.enqueue_many([("lim.tenant", {"tenant": "b"}) for _ in range(5)])
    with running_worker(limited, concurrency=4):
        wait_for(lambda: len(ledger.started("b")) >= 5, 10, "tenant b's 5 jobs to start")
        a_started = len(ledger.started("a"))
    assert a_started < 100, "tenant b waited behind tenant a's backlog"
    assert ledger.peak <= 2  # one of each tenant at once


def test_a_group_rate_limit_keeps_a_bucket_per_key(
    limited: Stem, ledger: Ledger, database_url: str, namespace: str
) -> None:
    limited.enqueue_many([("lim.grouped", {"tenant": t}) for t in "ab" for _ in range(4)])
    with running_worker(limited, concurrency=10):
        wait_for(lambda: len(ledger.starts) >= 8, 10, "8 grouped starts")
    for tenant in "ab":
        starts = sorted(ledger.started(f"grouped-{tenant}"))
        assert starts[-1] - starts[0] >= 0.5  # 1 at once, then 5 a second: 3 more take 0.6 s
    keys = _scalar(
        database_url,
        namespace,
        "SELECT string_agg(key, ',' ORDER BY key) FROM {ns}.limiter_state WHERE scope = 'group:lim.grouped'",
    )
    assert keys == ",a,b"


def test_a_deleted_limiter_row_fails_open_or_closed_as_configured(
    limited: Stem,
    ledger: Ledger,
    database_url: str,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="stem_pg.worker.limited")
    with running_worker(limited, concurrency=10, maintenance_interval=60.0):
        wait_for(lambda: _scalar(database_url, namespace, "SELECT count(*) FROM {ns}.limiters"), 10, "rows")
        limited.enqueue("lim.open", {"n": 0})  # the bucket of 1/h has one token: it runs
        wait_for(lambda: ledger.started("open"), 10, "the first open job")
        _scalar(
            database_url,
            namespace,
            "DELETE FROM {ns}.limiters WHERE scope IN ('task:lim.open', 'task:lim.closed') RETURNING 1",
        )
        limited.enqueue_many([("lim.open", {"n": n}) for n in range(1, 4)])
        limited.enqueue_many([("lim.closed", {"n": n}) for n in range(3)])
        wait_for(lambda: len(ledger.started("open")) >= 4, 10, "the open jobs to run without their limit")
        time.sleep(0.5)
        assert ledger.started("closed") == []
        waiting = "SELECT count(*) FROM {ns}.jobs WHERE task = 'lim.closed' AND state = 'queued'"
        assert _scalar(database_url, namespace, waiting) == 3
    messages = [r.getMessage() for r in caplog.records]
    assert any("rate limit of task:lim.open has no row" in m and "fail open" in m for m in messages)
    assert any("rate limit of task:lim.closed has no row" in m and "fail closed" in m for m in messages)


def test_unlimited_tasks_beside_limited_ones_are_not_held_back(limited: Stem, ledger: Ledger) -> None:
    limited.enqueue_many([("lim.open", {"n": n}) for n in range(20)])  # 1/h: one runs
    limited.enqueue_many([("lim.free", {"n": n}) for n in range(20)])
    with running_worker(limited, concurrency=10):
        wait_for(lambda: len(ledger.started("free")) >= 20, 10, "the unlimited jobs")
    assert len(ledger.started("open")) == 1


def test_inspect_reports_the_limited_queues_and_the_limits(limited: Stem) -> None:
    with running_worker(limited, concurrency=4) as worker:
        control = Control.of(limited.backend)
        reply = wait_for(lambda: control.inspect(timeout=2).replies.get(worker.id), 20, "the inspect reply")
        data = reply.data
    assert data["limited_queues"] == ["default"]
    rated = next(row for row in data["limits"] if row["scope"] == "task:lim.rated")
    assert rated == {
        "kind": "rate",
        "scope": "task:lim.rated",
        "per_second": 20.0,
        "burst": 2.0,
        "concurrency": None,
        "key_field": None,
        "fail_open": True,
    }
    tenant = next(row for row in data["limits"] if row["scope"] == "task:lim.tenant")
    assert (tenant["kind"], tenant["concurrency"], tenant["key_field"]) == ("concurrency", 1, "tenant")


def test_without_group_keys_the_claim_reads_only_the_head_of_the_queue(
    database_url: str, namespace: str, ledger: Ledger
) -> None:
    stem = Stem(database_url, namespace=namespace, config=StemConfig())

    @stem.task(name="lim.head", rate_limit="10/s")
    def head(n: int) -> None:
        ledger.run("head", 0)

    @stem.task(name="lim.other")
    def other(n: int) -> None:
        ledger.run("other", 0)

    try:
        stem.enqueue_many([("lim.head", {"n": n}) for n in range(10)])
        stem.enqueue_many([("lim.other", {"n": n}) for n in range(10)])
        with running_worker(stem, concurrency=10):
            wait_for(lambda: len(ledger.started("other")) >= 10, 10, "the unlimited jobs behind")
            wait_for(lambda: len(ledger.started("head")) >= 10, 10, "the rate-limited jobs")
        heads = sorted(ledger.started("head"))
        assert heads[-1] - heads[0] >= 0.7  # 1 at once, then 10 a second
    finally:
        stem.close()


def test_a_queue_limit_from_the_routing_file_holds_every_task_of_the_queue(
    database_url: str, namespace: str, ledger: Ledger
) -> None:
    routing = RoutingConfig.from_mapping(
        {"queues": {"default": {}, "narrow": {"concurrencyLimit": 1}}}, source="routing.yaml"
    )
    stem = Stem(database_url, namespace=namespace, config=StemConfig(), routing=routing)

    @stem.task(name="lim.one", queue="narrow")
    def one(n: int) -> None:
        ledger.run("one", 0.1)

    @stem.task(name="lim.two", queue="narrow")
    def two(n: int) -> None:
        ledger.run("two", 0.1)

    try:
        stem.enqueue_many([(name, {"n": n}) for n in range(3) for name in ("lim.one", "lim.two")])
        with running_worker(stem, queues=("narrow",), concurrency=10):
            wait_for(lambda: len(ledger.ends) >= 6, 15, "6 jobs to finish")
        assert ledger.peak == 1
    finally:
        stem.close()


def test_idle_group_rows_are_pruned_and_made_again_on_use(
    limited: Stem, ledger: Ledger, database_url: str, namespace: str
) -> None:
    limited.enqueue_many([("lim.tenant", {"tenant": t}) for t in ("a", "b")])
    with running_worker(limited, concurrency=4):
        wait_for(lambda: len(ledger.ends) >= 2, 10, "2 jobs")
    rows = "SELECT string_agg(key, ',' ORDER BY key) FROM {ns}.limiters WHERE scope = 'task:lim.tenant'"
    assert _scalar(database_url, namespace, rows) == ",a,b"
    _scalar(
        database_url,
        namespace,
        "UPDATE {ns}.limiters SET refilled_at = now() - interval '2 minutes' RETURNING 1",
    )

    async def prune() -> int:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            return await LimitStore(limited.queries).prune(conn)

    assert asyncio.run(prune()) == 2  # the concurrency rows of a and b ...
    assert _scalar(database_url, namespace, rows) == ""  # ... not the limits' own rows
    limited.enqueue("lim.tenant", {"tenant": "a"})
    with running_worker(limited, concurrency=4):
        wait_for(lambda: len(ledger.ends) >= 3, 10, "the job of a")
    assert _scalar(database_url, namespace, rows) == ",a"


async def test_a_rate_limited_claim_writes_its_bucket_once_not_twice_per_job(
    app: Stem, database_url: str, namespace: str
) -> None:
    # Refilled once, spent in memory, written back once (migration 0016): a claim of 40
    # jobs made 80 updates of the limiter row before, slow enough under load to lose tokens.
    plan = claim_plan(["default"], [declared_limits("task:lim.fast", rate_limit="1000/s")], {})
    store = LimitStore(app.queries)
    app.enqueue_many([("lim.fast", {"n": n}) for n in range(60)])
    ns = sql.Identifier(namespace)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await store.register(conn, rows=plan.rows)
        await conn.execute(sql.SQL("CREATE TABLE {}.limiter_updates (n int)").format(ns))
        await conn.execute(
            sql.SQL(
                "CREATE FUNCTION {ns}.count_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " INSERT INTO {ns}.limiter_updates VALUES (1); RETURN NEW; END $$"
            ).format(ns=ns)
        )
        await conn.execute(
            sql.SQL(
                "CREATE TRIGGER counted BEFORE UPDATE ON {ns}.limiters"
                " FOR EACH ROW EXECUTE FUNCTION {ns}.count_update()"
            ).format(ns=ns)
        )
        cur = await store.send_claim(
            conn,
            queue="default",
            limit=40,
            worker_id="w",
            token=str(uuid.uuid4()),
            lease_seconds=30,
            spec=json.dumps(plan.specs["default"]),
        )
        claim = await store.read_claim(cur)
        assert len(claim.jobs) == 40
        updates = await (
            await conn.execute(sql.SQL("SELECT count(*) FROM {}.limiter_updates").format(ns))
        ).fetchone()
        assert updates == (2,)
        rows = await (await conn.execute(sql.SQL("SELECT tokens FROM {}.limiters").format(ns))).fetchall()
        assert len(rows) == 1 and 60 <= rows[0][0] < 62  # 100 (0.1 s worth) - 40, a few ms' refill


@pytest.mark.parametrize("key", [None, "{tenant}"], ids=["head-only", "round-robin"])
async def test_the_limited_claim_takes_jobs_in_the_order_they_became_due(
    app: Stem, database_url: str, namespace: str, key: str | None
) -> None:
    # As the plain claim does (migration 0015), and by walking the claim index instead of
    # sorting the queue's whole backlog (migration 0017): a job enqueued later that became
    # due earlier comes first.
    limits = declared_limits("task:lim.due", concurrency_limit=5, concurrency_key=key)
    plan = claim_plan(["default"], [limits], {})
    store = LimitStore(app.queries)
    enqueued_first = app.enqueue("lim.due", {"tenant": "a"})
    due_first = app.enqueue("lim.due", {"tenant": "a"})
    ns = sql.Identifier(namespace)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for job, seconds_ago in ((enqueued_first, 1), (due_first, 2)):
            await conn.execute(
                sql.SQL(
                    "UPDATE {}.jobs SET not_before = now() - make_interval(secs => %s) WHERE id = %s"
                ).format(ns),
                (seconds_ago, job.id),
            )
        await store.register(conn, rows=plan.rows)
        cur = await store.send_claim(
            conn,
            queue="default",
            limit=1,
            worker_id="w",
            token=str(uuid.uuid4()),
            lease_seconds=30,
            spec=json.dumps(plan.specs["default"]),
        )
        claim = await store.read_claim(cur)
    assert [job.id for job in claim.jobs] == [due_first.id]
