"""The typed task API at run time (``Task``, ``TaskCall``, ``Workflow``) and pydantic model
arguments: validated at enqueue, stored as JSON, rebuilt at a real worker."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg import sql
from pydantic import BaseModel, Field

from stem_pg import Stem, TaskContext
from stem_pg.client.tasks import AsyncTask, SyncTask, Task, Workflow
from stem_pg.config.settings import StemConfig
from stem_pg.core.errors import BadArgumentsError, TaskFailed
from tests.helpers import running_worker


class Address(BaseModel):
    city: str
    zip: str = Field(pattern=r"^\d{5}$")


class Order(BaseModel):
    id: int
    items: list[str]
    ship_to: Address | None = None


def rows(db: psycopg.Connection[Any], namespace: str) -> list[tuple[Any, ...]]:
    query = sql.SQL("SELECT task, args, priority, queue FROM {}.jobs ORDER BY seq")
    return db.execute(query.format(sql.Identifier(namespace))).fetchall()


def test_a_task_stays_callable_and_enqueues_with_checked_arguments(
    app: Stem, db: psycopg.Connection[Any], namespace: str
) -> None:
    @app.task(name="math.add", priority=2)
    def add(x: int, y: int = 0) -> int:
        return x + y

    @app.task(name="math.double")
    async def double(ctx: TaskContext, x: int) -> int:
        return 2 * x

    assert isinstance(add, SyncTask) and isinstance(double, AsyncTask) and isinstance(add, Task)
    assert add(2, y=3) == 5 and add.__name__ == "add" and add.task_name == add.name == "math.add"
    assert app.registry["math.add"].fn is add.fn  # the worker's view: the plain function
    add.enqueue(1, y=2)
    add.options(priority=9, countdown=60).delay(3)
    asyncio.run(add.options(queue="default").aenqueue(x=4))
    assert rows(db, namespace) == [
        ("math.add", {"x": 1, "y": 2}, 2, "default"),
        ("math.add", {"x": 3}, 9, "default"),
        ("math.add", {"x": 4}, 2, "default"),
    ]
    with pytest.raises(BadArgumentsError, match=r"task 'math.add': missing a required argument: 'x'"):
        add.enqueue(y=1)  # type: ignore[call-arg]
    with running_worker(app):
        assert double.enqueue(x=21).get(timeout=10) == 42
        assert double.options(task_id="double-1").enqueue(5).get(timeout=10) == 10
        assert app.result("double-1").get(timeout=10) == 10


def test_a_workflow_starts_with_typed_parameters(app: Stem) -> None:
    @app.workflow(name="wf.typed")
    async def typed_flow(ctx: Any, order_id: int, note: str = "") -> str:
        return f"{order_id}{note}"

    assert isinstance(typed_flow, Workflow) and typed_flow.workflow_name == "wf.typed"
    with running_worker(app):
        assert typed_flow.start(7, note="!").get(timeout=15) == "7!"
        assert typed_flow.start_with(run_id="run-typed-1")(order_id=8).get(timeout=15) == "8"


def test_model_arguments_are_validated_stored_as_json_and_rebuilt_at_the_worker(
    app: Stem, db: psycopg.Connection[Any], namespace: str
) -> None:
    seen: list[Any] = []

    @app.task(name="orders.ship")
    def ship(order: Order, extra: list[Address] | None = None, note: str = "") -> str:
        seen.append((order, extra))
        return f"{order.id}:{len(order.items)}"

    order = Order(id=1, items=["book"], ship_to=Address(city="Oslo", zip="01500"))
    by_model = ship.enqueue(order, extra=[Address(city="Rome", zip="00100")])
    by_dict = app.enqueue("orders.ship", {"order": {"id": "2", "items": ["a", "b"]}})
    stored = [args for _task, args, _priority, _queue in rows(db, namespace)]
    assert stored[0] == {
        "order": {"id": 1, "items": ["book"], "ship_to": {"city": "Oslo", "zip": "01500"}},
        "extra": [{"city": "Rome", "zip": "00100"}],
    }
    assert stored[1] == {"order": {"id": 2, "items": ["a", "b"], "ship_to": None}}
    with running_worker(app):
        assert by_model.get(timeout=10) == "1:1"
        assert by_dict.get(timeout=10) == "2:2"
    assert seen[0] == (order, [Address(city="Rome", zip="00100")])
    assert isinstance(seen[1][0], Order) and seen[1][0].id == 2

    with pytest.raises(
        BadArgumentsError,
        match=r"task 'orders.ship': argument 'order' is not a valid Order at ship_to.zip: String should",
    ):
        ship.enqueue({"id": 3, "items": [], "ship_to": {"city": "X", "zip": "abc"}})  # type: ignore[arg-type]
    assert rows(db, namespace) == []  # nothing written


def test_a_stored_argument_its_model_refuses_is_dead_lettered_at_the_worker(
    app: Stem, database_url: str, db: psycopg.Connection[Any], namespace: str
) -> None:
    @app.task(name="orders.count", max_retries=5)
    def count(order: Order) -> int:
        return len(order.items)

    producer = Stem(database_url, namespace=namespace, config=StemConfig())  # registers nothing
    bad = producer.enqueue("orders.count", {"order": {"id": "not a number", "items": []}})
    producer.close()
    refused = r"bad_arguments: task 'orders.count': argument 'order' is not a valid Order at id"
    with running_worker(app), pytest.raises(TaskFailed, match=refused):
        bad.get(timeout=10)
    query = sql.SQL("SELECT reason, attempts FROM {}.dead_letters WHERE task_id = %s")
    assert db.execute(query.format(sql.Identifier(namespace)), [bad.id]).fetchall() == [("bad_arguments", 1)]
