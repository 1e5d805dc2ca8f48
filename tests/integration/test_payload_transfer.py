"""How arguments travel: the batch inserts send them in binary arrays (no escaping, no
array parsing on the server), and a worker's claims decode them with msgspec when it is
installed, with the standard library's json otherwise, to the same values."""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import pq, sql

import stem_pg.db.args_json as args_json
from stem_pg.client.app import EnqueueRequest, Stem
from stem_pg.db.stores.jobs import JobStore

#: Arguments that text-format arrays would have to escape, and values at the edges of
#: what the decoders read: a surrogate pair, an integer past 64 bits, a float's last digit.
TRICKY: dict[str, Any] = {
    "quotes": 'a "quoted" {braced}, [listed] \\back\\slashed\\ NULL',
    "lines": "tab\there\nnew line\r\n",
    "text": "naïve café, 東京, 🎉",
    "big": 2**70 + 1,  # no float has it (orjson would return one)
    "negative": -(2**64) - 1,
    "huge": 10**400,
    "float": 0.1 + 0.2,
    "nested": {"list": [1, 2.5, None, True, "x"], "empty": {}},
}

_BIND = re.compile(r'\tBind\t "[^"]*" "[^"]*" (\d+) ')


def _bind_formats(trace: str) -> list[list[int]]:
    """The parameter format codes of every Bind message in a libpq trace (1: binary)."""
    found = []
    for match in _BIND.finditer(trace):
        count = int(match.group(1))
        codes = trace[match.end() :].split(" ", count)[:count]
        found.append([int(code) for code in codes])
    return found


@contextmanager
def _traced(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> Iterator[list[str]]:
    """The libpq protocol trace of ``conn`` while the block runs (in the list, after it)."""
    out: list[str] = []
    with tempfile.TemporaryFile("w+b") as f:
        conn.pgconn.trace(f.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield out
        finally:
            conn.pgconn.untrace()
            f.seek(0)
            out.append(f.read().decode(errors="replace"))


def _stored_args(db: psycopg.Connection[Any], ns: str) -> list[Any]:
    query = sql.SQL("SELECT args FROM {}.jobs ORDER BY seq").format(sql.Identifier(ns))
    return [row[0] for row in db.execute(query).fetchall()]


def test_a_batch_insert_sends_the_arguments_in_binary(
    app: Stem, database_url: str, db: psycopg.Connection[Any]
) -> None:
    """``enqueue_many`` below the COPY threshold is one INSERT from parallel arrays: its
    arguments and headers (the 5th and 6th) go out as binary ``text[]``, so a 100 KB payload is
    neither escaped by psycopg nor parsed as an array literal by the server (~3x the time)."""
    with psycopg.connect(database_url) as conn:
        with _traced(conn) as trace:
            app.enqueue_many([EnqueueRequest("t", TRICKY), EnqueueRequest("t", {"n": 1})], connection=conn)
        conn.commit()
    inserts = [codes for codes in _bind_formats(trace[0]) if len(codes) == 13]
    assert inserts and inserts[0][4:6] == [1, 1], inserts
    assert _stored_args(db, app.namespace) == [TRICKY, {"n": 1}]


async def test_an_async_batch_insert_sends_the_arguments_in_binary(
    app: Stem, database_url: str, db: psycopg.Connection[Any]
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        with _traced(conn) as trace:
            await app.aenqueue_many([("t", TRICKY), ("t", {"n": 2})], connection=conn)
        await conn.commit()
    inserts = [codes for codes in _bind_formats(trace[0]) if len(codes) == 13]
    assert inserts and inserts[0][4:6] == [1, 1], inserts
    assert _stored_args(db, app.namespace) == [TRICKY, {"n": 2}]


def test_a_unique_batch_insert_sends_the_arguments_in_binary(
    app: Stem, database_url: str, db: psycopg.Connection[Any]
) -> None:
    @app.task(name="u", unique=True)
    def u(**kwargs: Any) -> None:
        pass

    with psycopg.connect(database_url) as conn:
        with _traced(conn) as trace:
            app.enqueue_many([("u", TRICKY), ("u", {"n": 3}), ("u", TRICKY)], connection=conn)
        conn.commit()
    inserts = [codes for codes in _bind_formats(trace[0]) if len(codes) == 15]
    assert inserts and inserts[0][4:6] == [1, 1], inserts
    assert _stored_args(db, app.namespace) == [TRICKY, {"n": 3}]  # the duplicate key: skipped


def test_copy_and_sqlalchemy_batches_store_the_same_arguments(
    app: Stem, database_url: str, db: psycopg.Connection[Any]
) -> None:
    """The other ways in (COPY from 200 jobs on; a SQLAlchemy connection, text arrays) agree."""
    from sqlalchemy import create_engine

    app.enqueue_many([("t", TRICKY)] * 200)
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            app.enqueue_many([("t", TRICKY), ("t", {"n": 4})], connection=conn)
    finally:
        engine.dispose()
    assert _stored_args(db, app.namespace) == [TRICKY] * 201 + [{"n": 4}]


class _Spy:
    """msgspec's decoder, counting its calls."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0

    def decode(self, data: Any) -> Any:
        self.calls += 1
        return self.real.decode(data)


async def _claim_all(app: Stem, database_url: str) -> list[Any]:
    store = JobStore(app.queries, result_ttl=60)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        jobs = await store.claim(
            conn, queue="default", limit=10, worker_id="w1", token=str(uuid.uuid4()), lease_seconds=60
        )
    return [(job.args, job.headers) for job in jobs]


@pytest.fixture
def enqueued(app: Stem) -> list[Any]:
    app.enqueue_many([EnqueueRequest("t", TRICKY, headers={"trace": "t1"}), ("t", {"n": 5}), ("t", {})])
    return [(TRICKY, {"trace": "t1"}), ({"n": 5}, None), (None, None)]


async def test_claimed_arguments_are_decoded_by_msgspec(
    app: Stem, database_url: str, enqueued: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With msgspec installed it decodes what a claim brings back, to the values json gives
    (integers past 64 bits stay integers)."""
    import msgspec

    spy = _Spy(msgspec.json.Decoder())
    monkeypatch.setattr(args_json, "_decoder", spy)
    assert await _claim_all(app, database_url) == enqueued
    assert spy.calls == 3  # two arguments and a header (empty ones come back NULL)


async def test_without_msgspec_the_standard_library_decodes_them(
    app: Stem, database_url: str, enqueued: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(args_json, "_decoder", None)
    assert await _claim_all(app, database_url) == enqueued


def test_what_msgspec_refuses_json_decodes_or_explains() -> None:
    assert args_json.loads(memoryview(b'{"a": [1, 2.5]}')) == {"a": [1, 2.5]}
    assert args_json.loads(b"NaN") != args_json.loads(b"NaN")  # json's, not an error
    with pytest.raises(ValueError, match="Expecting value"):  # json's message
        args_json.loads(b'{"a": ')


@pytest.mark.parametrize("decoder", ["msgspec", "json"])
def test_a_worker_runs_jobs_with_their_arguments_decoded(
    app: Stem, decoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import running_worker, wait_for

    if decoder == "json":
        monkeypatch.setattr(args_json, "_decoder", None)
    seen: list[dict[str, Any]] = []

    @app.task(name="echo")
    def echo(**kwargs: Any) -> None:
        seen.append(kwargs)

    app.enqueue_many([("echo", TRICKY), ("echo", {"blob": "x" * 100_000})])
    with running_worker(app):
        wait_for(lambda: len(seen) == 2, timeout=30, what="both jobs to run")
    assert sorted(seen, key=len) == [{"blob": "x" * 100_000}, TRICKY]
