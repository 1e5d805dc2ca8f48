"""The storable-value checks agree with Postgres, and a worker fails only the job that
produced what Postgres cannot store (a result, an error message, progress, an enqueue)."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.core.errors import TaskError
from stem_pg.core.storable import STRICT_JSON, encode_storable
from stem_pg.worker.context import TaskContext
from tests.helpers import running_worker, wait_for
from tests.unit.test_storable import REFUSED, STORED


@pytest.mark.parametrize(("value", "flaw"), REFUSED)
def test_what_the_check_refuses_jsonb_refuses(value: Any, flaw: str, db: psycopg.Connection[Any]) -> None:
    with pytest.raises(TaskError):
        encode_storable(value, what="v")
    with pytest.raises(psycopg.DataError):
        db.execute("SELECT %s::jsonb", (STRICT_JSON.encode(value),))


@pytest.mark.parametrize("value", STORED)
def test_what_the_check_accepts_jsonb_stores_unchanged(value: Any, db: psycopg.Connection[Any]) -> None:
    text = encode_storable(value, what="v")
    row = db.execute("SELECT %s::jsonb", (text,)).fetchone()
    assert row is not None and row[0] == json.loads(text)


def results(db: psycopg.Connection[Any], namespace: str) -> dict[str, tuple[Any, ...]]:
    query = sql.SQL("SELECT id, state, result, error, traceback FROM {}.results").format(
        sql.Identifier(namespace)
    )
    return {row[0]: row[1:] for row in db.execute(query).fetchall()}


def test_a_worker_fails_only_the_jobs_whose_data_cannot_be_stored(
    app: Stem, db: psycopg.Connection[Any], namespace: str
) -> None:
    @app.task(name="nul_result")
    def nul_result() -> Any:
        return {"items": [0, 1, 2, "nul \x00 here"]}

    @app.task(name="nul_error")
    def nul_error() -> None:
        raise ValueError("bad \x00 byte, lone \ud800")

    @app.task(name="nul_progress")
    def nul_progress(ctx: TaskContext) -> str:
        try:
            ctx.progress({"step": "\x00"})
        except TaskError as exc:
            return str(exc)
        return "accepted"

    @app.task(name="nul_enqueue")
    def nul_enqueue() -> str:
        try:
            app.enqueue("ok", {"text": "\x00"})
        except TaskError as exc:
            return str(exc)
        return "accepted"

    @app.task(name="ok")
    def ok(n: int = 0) -> int:
        return n

    ids = ["nul_result", "nul_error", "nul_progress", "nul_enqueue"]
    for name in ids:
        app.enqueue(name, task_id=name)
    for n in range(10):
        app.enqueue("ok", {"n": n}, task_id=f"ok-{n}")
    with running_worker(app, concurrency=8):
        wait_for(lambda: len(results(db, namespace)) == 14, 30, "14 results")
    done = results(db, namespace)

    assert done["nul_result"][:3] == (
        "failed",
        None,
        "TaskError: nul_result: return value is not storable: NUL character at $.items[3]",
    )
    state, result, error, trace = done["nul_error"]
    assert (state, result, error) == ("failed", None, "ValueError: bad \\x00 byte, lone \\ud800")
    assert "ValueError: bad \\x00 byte, lone \\ud800" in trace
    assert done["nul_progress"][:2] == ("succeeded", "progress is not storable: NUL character at $.step")
    assert done["nul_enqueue"][:2] == ("succeeded", "ok: argument 'text' is not storable: NUL character at $")
    assert [done[f"ok-{n}"][:2] for n in range(10)] == [("succeeded", n) for n in range(10)]
