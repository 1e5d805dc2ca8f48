"""Chains, groups and chords on a real Postgres with in-process workers."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from stem_pg import TaskCancelled, chain, chord, group
from stem_pg.client.app import Stem
from stem_pg.core.errors import TaskError
from stem_pg.testing import run_until_idle
from tests.helpers import running_worker, wait_for

Db = psycopg.Connection[tuple[Any, ...]]


# @app.task adds .s and .si at run time; its type is the plain function's, hence the
# ignores where a test calls them on a task it decorates itself.
def _tasks(app: Stem) -> dict[str, Any]:
    @app.task(name="c.add", max_retries=0)
    def add(x: int, result: int = 0) -> int:
        return result + x

    @app.task(name="c.fail", max_retries=0)
    def fail(result: int = 0) -> int:
        raise ValueError(f"bad input {result}")

    @app.task(name="c.square", ignore_result=True)
    def square(x: int) -> int:
        return x * x

    @app.task(name="c.total")
    def total(results: list[int]) -> int:
        return sum(results)

    @app.task(name="c.collect")
    def collect(results: list[int]) -> list[int]:
        return results

    return {"add": add, "fail": fail, "square": square, "total": total, "collect": collect}


def test_chain_passes_each_result_to_the_next_link(app: Stem, db: Db) -> None:
    t = _tasks(app)
    with running_worker(app):
        result = chain(t["add"].s(x=1), t["add"].s(x=10), t["add"].s(x=100)).delay()
        assert result.get(timeout=15) == 111
    row = db.execute(
        f'SELECT kind, state, pending FROM "{app.namespace}".canvases WHERE id = %s', [result.id]
    ).fetchone()
    assert row == ("chain", "succeeded", 0)


def test_chain_stops_at_a_failing_link_and_reports_it(app: Stem, db: Db) -> None:
    t = _tasks(app)
    with running_worker(app):
        result = chain(t["add"].s(x=1), t["fail"].s(), t["add"].s(x=5)).delay()
        stopped = r"chain stopped: link 1 \(c.fail\) failed: ValueError: bad input 1"
        with pytest.raises(TaskCancelled, match=stopped):
            result.get(timeout=15)
    states = db.execute(
        f'SELECT state FROM "{app.namespace}".canvas_members WHERE canvas_id = %s ORDER BY position',
        [result.id],
    ).fetchall()
    assert [s for (s,) in states] == ["succeeded", "failed", "cancelled"]
    never_ran = db.execute(
        f'SELECT count(*) FROM "{app.namespace}".task_states WHERE id = %s AND started_at IS NOT NULL',
        [result.last.id],
    ).fetchone()
    assert never_ran == (0,)
    status = result.status()
    assert status is not None and status["state"] == "failed" and "link 1" in status["error"]


def test_group_gathers_results_in_input_order(app: Stem) -> None:
    t = _tasks(app)
    result = group(t["add"].s(x=i) for i in range(20)).delay()
    assert len(run_until_idle(app, concurrency=8)) == 20
    assert result.get(timeout=1) == list(range(20))


def test_chord_runs_callback_once_with_ordered_results_even_from_ignore_result_members(app: Stem) -> None:
    t = _tasks(app)
    result = chord([t["square"].s(x=i) for i in range(10)], t["collect"].s()).delay()
    outcomes = run_until_idle(app, concurrency=8)
    assert [o.task for o in outcomes].count("c.collect") == 1
    assert result.get(timeout=1) == [i * i for i in range(10)]


def test_chord_with_a_failed_member_cancels_its_callback(app: Stem, db: Db) -> None:
    t = _tasks(app)
    with running_worker(app, concurrency=4):
        result = chord([t["add"].s(x=1), t["fail"].s(), t["add"].s(x=2)], t["total"].s()).delay()
        with pytest.raises(TaskCancelled, match=r"chord member 1 \(c.fail\) failed"):
            result.get(timeout=15)
    assert db.execute(
        f'SELECT count(*) FROM "{app.namespace}".task_states WHERE task = %s', ["c.total"]
    ).fetchone() == (1,)  # the cancelled callback's result row, and no run


def test_immutable_signature_and_result_arg(app: Stem) -> None:
    t = _tasks(app)

    @app.task(name="c.mul")
    def mul(x: int, factor: int) -> int:
        return x * factor

    result = chain(t["add"].s(x=3), mul.s(x=2).set(result_arg="factor"), t["add"].si(x=7)).delay()
    outcomes = run_until_idle(app)
    assert [(o.task, o.result) for o in outcomes] == [("c.add", 3), ("c.mul", 6), ("c.add", 7)]
    assert result.get(timeout=1) == 7


def test_canvas_in_the_callers_transaction(app: Stem, database_url: str, db: Db) -> None:
    t = _tasks(app)
    with psycopg.connect(database_url) as conn:
        result = app.apply(group([t["add"].s(x=1)]), connection=conn)
        conn.rollback()
    assert db.execute(
        f'SELECT count(*) FROM "{app.namespace}".canvases WHERE id = %s', [result.id]
    ).fetchone() == (0,)


def test_bad_canvas_input_is_refused(app: Stem) -> None:
    t = _tasks(app)
    with pytest.raises(TaskError, match="at least one"):
        chain()
    with pytest.raises(TaskError, match="unknown signature option"):
        t["add"].s(x=1).set(colour="red")
    with pytest.raises(TaskError, match="expected signatures"):
        group(["c.add"])  # type: ignore[list-item]  # the mistake under test
    with pytest.raises(TaskError, match="result_arg must be a parameter name"):
        t["add"].s(x=1).set(result_arg="not a name")


def _replay(app: Stem, task_id: str) -> list[str]:
    from stem_pg.db.stores.dead_letters import DeadLetterFilter, DeadLetterStore

    with app.pool.connection() as conn:
        return DeadLetterStore(app.queries).replay(conn, where=DeadLetterFilter(), key=task_id)


def _canvas(db: Db, app: Stem, canvas_id: str) -> tuple[Any, ...] | None:
    query = f'SELECT state, pending, failed, error FROM "{app.namespace}".canvases WHERE id = %s'
    return db.execute(query, [canvas_id]).fetchone()


def test_replaying_a_dead_chain_link_runs_the_rest_of_the_chain(app: Stem, db: Db) -> None:
    t = _tasks(app)
    ready: list[bool] = []

    @app.task(name="c.flaky", max_retries=0)
    def flaky(result: int = 0) -> int:
        if not ready:
            raise RuntimeError("not yet")
        return result * 2

    with running_worker(app):
        result = chain(t["add"].s(x=1), flaky.s(), t["add"].s(x=5)).delay()
        with pytest.raises(TaskCancelled, match=r"link 1 \(c.flaky\) failed: RuntimeError: not yet"):
            result.get(timeout=15)
        ready.append(True)
        flaky_id = result.members[1].id
        assert _replay(app, flaky_id) == [flaky_id]
        assert _canvas(db, app, result.id) == ("running", 2, 0, None)
        assert result.get(timeout=15) == 7  # (1 * 2) + 5: the cancelled last link ran too
    assert _canvas(db, app, result.id) == ("succeeded", 0, 0, None)
    states = db.execute(
        f'SELECT state FROM "{app.namespace}".canvas_members WHERE canvas_id = %s ORDER BY position',
        [result.id],
    ).fetchall()
    assert states == [("succeeded",), ("succeeded",), ("succeeded",)]


def test_replaying_a_dead_chord_member_runs_the_callback_once_it_succeeds(app: Stem, db: Db) -> None:
    t = _tasks(app)
    ready: list[bool] = []

    @app.task(name="c.flaky_square", max_retries=0)
    def flaky_square(x: int) -> int:
        if x == 3 and not ready:
            raise RuntimeError("three is not ready")
        return x * x

    with running_worker(app):
        result = chord([flaky_square.s(x=x) for x in (1, 2, 3)], t["total"].s()).delay()
        with pytest.raises(TaskCancelled, match="chord member 2"):
            result.get(timeout=15)
        ready.append(True)
        assert _replay(app, result.members[2].id) == [result.members[2].id]
        assert result.get(timeout=15) == 14
    assert _canvas(db, app, result.id) == ("succeeded", 0, 0, None)


def test_a_group_with_two_dead_members_fails_again_until_both_are_replayed(app: Stem, db: Db) -> None:
    ready: list[bool] = []

    @app.task(name="c.picky", max_retries=0)
    def picky(x: int) -> int:
        if x > 1 and not ready:
            raise RuntimeError(f"{x} is too big")
        return x

    with running_worker(app):
        result = group([picky.s(x=x) for x in (1, 2, 3)]).delay()
        wait_for(lambda: (_canvas(db, app, result.id) or ("",))[0] == "failed")
        ready.append(True)
        _replay(app, result.members[1].id)
        wait_for(lambda: (_canvas(db, app, result.id) or ("",))[0] == "failed")  # member 2 still failed
        _, _, failed, error = _canvas(db, app, result.id)  # type: ignore[misc]
        assert (failed, "member 2 (c.picky) failed" in error) == (1, True)
        _replay(app, result.members[2].id)
        assert result.get(timeout=15) == [1, 2, 3]
    assert _canvas(db, app, result.id) == ("succeeded", 0, 0, None)
