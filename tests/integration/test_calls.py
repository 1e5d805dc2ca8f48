"""Calls as Celery users expect them: ``task.delay``, arguments checked against the handler
(at enqueue, and before a worker runs it: ``bad_arguments``), progress and ``info`` on the
result, a ``get()`` timeout that names the task and its state, "did you mean" for task
options, task names and queues, and the task options a worker records."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg import chain
from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.core.errors import (
    BadArgumentsError,
    ResultTimeout,
    RoutingConfigError,
    TaskFailed,
    UnknownTaskWarning,
)
from stem_pg.core.routing import RoutingConfig
from stem_pg.db.stores.workers import WorkerStore
from stem_pg.worker.context import TaskContext
from tests.helpers import running_worker, wait_for


def jobs(db: psycopg.Connection[Any], namespace: str) -> list[tuple[Any, ...]]:
    query = sql.SQL("SELECT id, task, args, priority, max_retries FROM {}.jobs ORDER BY seq")
    return db.execute(query.format(sql.Identifier(namespace))).fetchall()


@pytest.fixture
def producer(database_url: str, namespace: str) -> Iterator[Stem]:
    """An application that registers no task: it enqueues what others define, unchecked."""
    stem = Stem(database_url, namespace=namespace, config=StemConfig())
    yield stem
    stem.close()


def test_delay_enqueues_with_keywords_and_names_positionals_after_the_parameters(
    app: Stem, db: psycopg.Connection[Any], namespace: str
) -> None:
    @app.task(name="mail.send", priority=3)
    def send(ctx: TaskContext, to: str, subject: str = "hi", **extra: Any) -> None: ...

    by_keyword = send.delay(to="a@x", subject="s")
    by_position = send.delay("b@x", "t", cc="c@x")
    assert [row[2] for row in jobs(db, namespace)] == [
        {"to": "a@x", "subject": "s"},
        {"to": "b@x", "subject": "t", "cc": "c@x"},
    ]
    assert by_keyword.state == by_position.state == "queued"
    with pytest.raises(BadArgumentsError, match=r"task 'mail.send': too many positional arguments"):
        send.delay("c@x", "u", "v")

    @app.task(name="sum.all")
    def sum_all(*numbers: int) -> int:
        return sum(numbers)

    with pytest.raises(TypeError, match=r"jobs carry keyword arguments only"):
        sum_all.delay(1, 2)
    assert len(jobs(db, namespace)) == 2


def test_enqueue_refuses_arguments_the_handler_cannot_take(
    app: Stem, db: psycopg.Connection[Any], namespace: str
) -> None:
    @app.task(name="mail.send")
    def send(ctx: TaskContext, to: str, subject: str = "hi") -> None: ...

    with pytest.raises(BadArgumentsError, match=r"task 'mail.send': missing a required argument: 'to'"):
        app.enqueue("mail.send", {"subject": "s"})
    with pytest.raises(TypeError, match=r"missing a required argument: 'to'; did you mean 'to' for 'too'\?"):
        send.enqueue(too="a@x")  # type: ignore[call-arg]
    with pytest.raises(BadArgumentsError, match=r"enqueue_many item 1: task 'mail.send': .*'ctx'"):
        app.enqueue_many([("mail.send", {"to": "a"}), ("mail.send", {"to": "b", "ctx": 1})])
    assert jobs(db, namespace) == []
    # A chain link gets the previous result later: only what it cannot take is refused now.
    app.apply(chain(send.s(to="a@x"), send.s(subject="s")))


def test_a_job_whose_arguments_do_not_fit_is_dead_lettered_at_once(
    app: Stem, producer: Stem, db: psycopg.Connection[Any], namespace: str
) -> None:
    @app.task(name="math.add", max_retries=5)
    def add(x: int, y: int) -> int:
        return x + y

    bad = producer.enqueue("math.add", {"x": 1})  # the producer does not know the task
    good = producer.enqueue("math.add", {"x": 1, "y": 2})
    typo = producer.enqueue("math.ad", {"x": 1, "y": 2})
    with running_worker(app, claim_unregistered=True):  # else the typo waits for a worker that has it
        assert good.get(timeout=10) == 3
        with pytest.raises(
            TaskFailed, match=r"'math.ad' is not registered on worker .*; did you mean 'math.add'\?"
        ):
            typo.get(timeout=10)
        with pytest.raises(TaskFailed, match=r"bad_arguments: task 'math.add': missing a required argument"):
            bad.get(timeout=10)
    query = sql.SQL("SELECT reason, attempts FROM {}.dead_letters WHERE task_id = %s")
    dead = db.execute(query.format(sql.Identifier(namespace)), [bad.id]).fetchall()
    assert dead == [("bad_arguments", 1)]  # not retried five times


def test_progress_shows_on_the_result_and_in_task_states_and_info_follows_celery(
    app: Stem, db: psycopg.Connection[Any], namespace: str
) -> None:
    @app.task(name="long.job")
    def long_job(ctx: TaskContext, steps: int) -> str:
        for done in range(steps):
            ctx.progress({"done": done + 1, "of": steps})
            time.sleep(0.05)
        time.sleep(3)
        return "finished"

    @app.task(name="long.fail", max_retries=0)
    def long_fail() -> None:
        raise ValueError("nope")

    result = long_job.enqueue(steps=3)
    failed = long_fail.delay()
    assert result.progress is None and result.info is None
    view = sql.SQL("SELECT progress FROM {}.task_states WHERE id = %s").format(sql.Identifier(namespace))
    with running_worker(app):
        wait_for(lambda: result.progress == {"done": 3, "of": 3}, 10, "the last progress")
        assert result.info == {"done": 3, "of": 3}
        assert db.execute(view, [result.id]).fetchone() == ({"done": 3, "of": 3},)
        assert result.get(timeout=10) == "finished"
        failed.get(timeout=10, propagate=False)
    assert result.info == "finished" and result.progress is None
    assert db.execute(view, [result.id]).fetchone() == (None,)
    error = failed.info
    assert isinstance(error, TaskFailed) and "ValueError: nope" in str(error)
    assert app.result("never-enqueued").info is None


def test_get_times_out_with_the_task_id_and_its_state(app: Stem) -> None:
    handle = app.enqueue("nobody.runs.this")
    with pytest.raises(ResultTimeout) as raised:
        handle.get(timeout=0.2)
    assert isinstance(raised.value, TimeoutError)
    assert str(raised.value) == f"task {handle.id} did not finish within 0.2s (state: queued)"


async def test_wait_times_out_with_the_task_id_and_its_state(app: Stem) -> None:
    handle = await app.aenqueue("nobody.runs.this")
    with pytest.raises(
        ResultTimeout, match=rf"task {handle.id} did not finish within 0.2s \(state: queued\)"
    ):
        await handle.wait(timeout=0.2)
    await app.aclose()


def test_a_misspelled_task_option_is_a_type_error_naming_the_right_one(app: Stem) -> None:
    with pytest.raises(
        TypeError, match=r"@app.task on .*: unknown task option 'max_retrys'; did you mean 'max_retries'"
    ):

        @app.task(max_retrys=3)
        def flaky() -> None: ...

    with pytest.raises(BadArgumentsError, match=r"unknown task option 'colour'$"):
        app.task(colour="red")(lambda: None)


def test_an_unknown_task_name_close_to_a_registered_one_warns_and_is_enqueued(
    app: Stem, db: psycopg.Connection[Any], namespace: str
) -> None:
    @app.task(name="reports.daily")
    def daily() -> None: ...

    with pytest.warns(
        UnknownTaskWarning, match=r"'reports.dialy' is not registered here; did you mean 'reports.daily'"
    ):
        app.enqueue("reports.dialy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app.enqueue("billing.invoice")  # defined elsewhere, like nothing here: no warning
    assert [row[1] for row in jobs(db, namespace)] == ["reports.dialy", "billing.invoice"]
    with pytest.raises(KeyError, match=r"did you mean 'reports.daily'"):
        app.registry["reports.dayly"]


def test_an_unknown_queue_suggests_the_closest_defined_one(database_url: str, namespace: str) -> None:
    routing = RoutingConfig.from_mapping(
        {"default_queue": "default", "queues": {"default": {}, "emails": {}}}
    )
    stem = Stem(database_url, namespace=namespace, routing=routing, config=StemConfig())
    with pytest.raises(RoutingConfigError, match=r"unknown queue 'emials' \(did you mean 'emails'\?\)"):
        stem.enqueue("mail.send", queue="emials")
    with pytest.raises(RoutingConfigError, match=r"unknown queue 'zzz'; known"):
        stem.enqueue("mail.send", queue="zzz")
    stem.close()


def test_a_worker_records_its_tasks_options_for_enqueuers_without_the_app(
    app: Stem, db: psycopg.Connection[Any], namespace: str
) -> None:
    @app.task(name="batch.rebuild", priority=7, max_retries=0, unique=True)
    def rebuild() -> None: ...

    store = WorkerStore(app.queries)
    with running_worker(app):
        found = wait_for(
            lambda: store.task_options(db, task="batch.rebuild", stale_after=60), 10, "the registration"
        )
        assert store.task_options(db, task="batch.other", stale_after=60) is None
    assert found == {
        "queue": "default",
        "priority": 7,
        "max_retries": 0,
        "visibility_timeout": None,
        "acks_late": True,
        "unique": True,
        "unique_for": None,
    }
    assert store.task_options(db, task="batch.rebuild", stale_after=60) is None  # stopped: not live
