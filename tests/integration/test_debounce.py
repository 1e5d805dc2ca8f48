"""Debounced enqueue: a burst of enqueues with one key runs once, with the last arguments;
after it ran, the key makes a new job; concurrent producers never make two waiting jobs."""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.core.errors import TaskError
from stem_pg.core.planning import EnqueueRequest
from stem_pg.core.signing import Signing
from stem_pg.db.stores.jobs import JobStore
from stem_pg.db.stores.rows import Release
from tests.helpers import running_worker


def rows(db: psycopg.Connection[Any], namespace: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    return db.execute(sql.SQL(query).format(ns=sql.Identifier(namespace)), params).fetchall()


def test_a_burst_runs_once_with_the_last_arguments_and_a_later_enqueue_runs_again(
    app: Stem, db: psycopg.Connection[Any], namespace: str
) -> None:
    @app.task(name="deb.save")
    def save(draft: int) -> int:
        return draft

    with running_worker(app, poll_interval=0.05):
        handles = [app.enqueue("deb.save", {"draft": n}, debounce="0.5s", key="doc-1") for n in (1, 2, 3)]
        app.enqueue("deb.save", {"draft": 9}, debounce="0.5s", key="doc-2")  # another key: its own job
        assert len({h.id for h in handles}) == 1
        assert handles[0].get(timeout=10) == 3
        later = app.enqueue("deb.save", {"draft": 4}, debounce="0.1s", key="doc-1")
        assert later.id != handles[0].id
        assert later.get(timeout=10) == 4
        time.sleep(0.6)  # doc-2's job ran too
    ran = rows(
        db, namespace, "SELECT args->>'draft' FROM {ns}.jobs UNION ALL SELECT result::text FROM {ns}.results"
    )
    assert sorted(r[0] for r in ran) == ["3", "4", "9"]


def test_a_replaced_signed_job_is_signed_for_the_id_it_runs_under(
    database_url: str, db: psycopg.Connection[Any], namespace: str
) -> None:
    signed = Stem(
        database_url, namespace=namespace, config=StemConfig(), signing=Signing.from_spec({"k1": "x" * 32})
    )
    signed.task(name="deb.save")(lambda draft: draft)
    try:
        handles = [signed.enqueue("deb.save", {"draft": n}, debounce=0.2, key="doc") for n in (1, 2)]
        with running_worker(signed, poll_interval=0.05):
            assert handles[1].get(timeout=10) == 2
        assert rows(db, namespace, "SELECT count(*) FROM {ns}.dead_letters") == [(0,)]
    finally:
        signed.close()


def test_the_run_time_moves_with_each_enqueue(app: Stem, db: psycopg.Connection[Any], namespace: str) -> None:
    published: list[tuple[str, str]] = []
    app.signals.after_publish.connect(lambda info: published.append((info.task, info.task_id)))
    first = app.enqueue("deb.save", {"draft": 1}, debounce="1h", key="doc")
    [(due_first,)] = rows(db, namespace, "SELECT not_before FROM {ns}.jobs")
    second = app.enqueue("deb.save", {"draft": 2}, debounce="2h", key="doc")
    [(job_id, draft, due_second)] = rows(
        db, namespace, "SELECT id, args->>'draft', not_before FROM {ns}.jobs"
    )
    assert job_id == first.id == second.id and draft == "2"
    assert published == [("deb.save", job_id)] * 2
    assert 3500 < (due_second - due_first).total_seconds() < 3700


def test_concurrent_producers_leave_one_waiting_job(
    app: Stem, db: psycopg.Connection[Any], namespace: str
) -> None:
    def burst(thread: int) -> set[str]:
        return {app.enqueue("deb.save", {"draft": thread}, debounce="1h", key="doc").id for _ in range(15)}

    with ThreadPoolExecutor(8) as pool:
        ids = set().union(*pool.map(burst, range(8)))
    assert rows(db, namespace, "SELECT id FROM {ns}.jobs") == [(ids.pop(),)]
    assert not ids


def test_a_job_given_back_unstarted_does_not_clash_with_the_next_one_of_its_key(
    app: Stem, database_url: str, db: psycopg.Connection[Any], namespace: str
) -> None:
    claimed = app.enqueue("deb.save", {"draft": 1}, debounce=0.001, key="doc")
    time.sleep(0.05)

    async def claim_then_release_after(enqueue_next: Any) -> None:
        store = JobStore(app.queries, result_ttl=60)
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            token = str(uuid.uuid4())
            [job] = await store.claim(
                conn, queue="default", limit=5, worker_id="w", token=token, lease_seconds=30
            )
            assert job.id == claimed.id
            enqueue_next()  # the claimed job has started, as far as debouncing goes: a new one
            await store.release(conn, outcomes=[Release(job.id, token)])

    nexts: list[str] = []
    asyncio.run(
        claim_then_release_after(
            lambda: nexts.append(app.enqueue("deb.save", {"draft": 2}, debounce="1h", key="doc").id)
        )
    )
    assert nexts[0] != claimed.id
    assert sorted(rows(db, namespace, "SELECT id, state FROM {ns}.jobs")) == sorted(
        [(claimed.id, "queued"), (nexts[0], "queued")]
    )
    # the released job runs as it is; the key stays with the newer job
    assert app.enqueue("deb.save", {"draft": 3}, debounce="1h", key="doc").id == nexts[0]


BAD: list[tuple[dict[str, Any], str]] = [
    ({"key": "k"}, r"deb.save: key= goes with debounce="),
    ({"debounce": "soon", "key": "k"}, r"deb.save: debounce: 'soon' is not a duration"),
    ({"debounce": -1, "key": "k"}, r"deb.save: debounce must be a positive duration"),
    ({"debounce": "5s"}, r"deb.save: debounce needs a key="),
    (
        {"debounce": "5s", "key": "k", "countdown": 3},
        r"deb.save: debounce sets the job's id and run time; drop countdown=",
    ),
    (
        {"debounce": "5s", "key": "k", "connection": object()},
        r"deb.save: a debounced enqueue commits on its own",
    ),
]


def test_bad_debounce_arguments_are_refused_with_one_line() -> None:
    stem = Stem()  # refused before any connection
    for options, message in BAD:
        with pytest.raises(TaskError, match=message):
            stem.enqueue("deb.save", {"draft": 1}, **options)


def test_aenqueue_debounces_and_concurrent_async_producers_leave_one_waiting_job(
    app: Stem, db: psycopg.Connection[Any], namespace: str
) -> None:
    async def burst() -> list[str]:
        first = await app.aenqueue("deb.save", {"draft": 0}, debounce="1h", key="doc")
        calls = [app.aenqueue("deb.save", {"draft": n}, debounce="2h", key="doc") for n in range(1, 21)]
        return [first.id] + [h.id for h in await asyncio.gather(*calls)]

    ids = asyncio.run(burst())
    [(job_id, due)] = rows(db, namespace, "SELECT id, not_before - now() FROM {ns}.jobs")
    assert set(ids) == {job_id}
    assert due.total_seconds() > 3600  # the later enqueues moved its run time
    with pytest.raises(TaskError, match=r"deb.save: debounce needs a key="):
        asyncio.run(app.aenqueue("deb.save", {"draft": 1}, debounce="5s"))


def test_enqueue_many_and_its_async_twin_debounce_their_debounced_requests(
    app: Stem, db: psycopg.Connection[Any], namespace: str
) -> None:
    def batch(draft: int) -> list[EnqueueRequest | tuple[str, dict[str, Any]]]:
        return [
            EnqueueRequest("deb.save", {"draft": draft}, debounce="1h", key="doc"),
            ("deb.other", {"n": draft}),
            EnqueueRequest("deb.save", {"draft": draft + 1}, debounce="1h", key="doc"),
            EnqueueRequest("deb.save", {"draft": draft}, debounce="1h", key="memo"),
        ]

    handles = app.enqueue_many(batch(1))
    assert handles[0].id == handles[2].id != handles[3].id
    async_handles = asyncio.run(app.aenqueue_many(batch(5)))
    assert [h.id for h in async_handles[::2]] == [h.id for h in handles[::2]]
    assert async_handles[1].id != handles[1].id
    got = rows(db, namespace, "SELECT task, args FROM {ns}.jobs ORDER BY task, args->>'draft', args->>'n'")
    assert got == [
        ("deb.other", {"n": 1}),
        ("deb.other", {"n": 5}),
        ("deb.save", {"draft": 5}),  # memo
        ("deb.save", {"draft": 6}),  # doc: the last call's arguments
    ]


def test_a_bad_debounced_request_in_a_batch_names_its_position_and_writes_nothing(
    app: Stem, db: psycopg.Connection[Any], namespace: str
) -> None:
    bad: list[EnqueueRequest | tuple[str, dict[str, Any]]] = [
        ("deb.other", {"n": 1}),
        EnqueueRequest("deb.save", {"draft": 1}, debounce="5s"),
    ]
    with pytest.raises(TaskError, match=r"^enqueue_many item 1: deb.save: debounce needs a key="):
        app.enqueue_many(bad)
    with pytest.raises(TaskError, match=r"^enqueue_many item 1: deb.save: debounce needs a key="):
        asyncio.run(app.aenqueue_many(bad))
    assert rows(db, namespace, "SELECT count(*) FROM {ns}.jobs") == [(0,)]
