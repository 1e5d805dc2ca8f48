"""A worker fails only the job that produced what Postgres cannot store: a result, an
error message, progress, an enqueue from a handler; the other jobs run once and succeed."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.core.errors import TaskError
from stem_pg.worker.context import TaskContext
from tests.helpers import running_worker, wait_for


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

    @app.task(name="nul_error", max_retries=1, retry_backoff=0.1, retry_jitter=False)
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
    history = sql.SQL("SELECT errors FROM {}.dead_letters WHERE task_id = 'nul_error'").format(
        sql.Identifier(namespace)
    )
    errors = db.execute(history).fetchall()[0][0]  # the retry's error, then the final one
    assert [(e["attempt"], e["error"]) for e in errors] == [(n, error) for n in (1, 2)]
    assert done["nul_progress"][:2] == ("succeeded", "progress is not storable: NUL character at $.step")
    assert done["nul_enqueue"][:2] == ("succeeded", "ok: argument 'text' is not storable: NUL character at $")
    assert [done[f"ok-{n}"][:2] for n in range(10)] == [("succeeded", n) for n in range(10)]
