"""Bad input is one clear error naming the argument, on every path that writes, and nothing of
its batch is written: enqueue, enqueue_many (statements and COPY), canvases, workflows,
broadcasts and schedules, on a real Postgres."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg import chain, chord, group
from stem_pg.client.app import EnqueueRequest, Stem
from stem_pg.config.routing_file import load_routing_yaml
from stem_pg.config.settings import StemConfig
from stem_pg.core.errors import ConfigError, ScheduleError, TaskError
from stem_pg.core.schedule_specs import IntervalSpec
from stem_pg.core.schedules import ScheduleEntry

Db = psycopg.Connection[tuple[Any, ...]]
MB = 1024 * 1024
TABLES = ("jobs", "canvases", "wf_runs", "broadcast_messages", "schedules")


def nested(levels: int) -> list[Any]:
    """``levels`` lists, each inside the one before: [[[...]]]."""
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def written(db: Db, namespace: str) -> dict[str, int]:
    """The rows of every table an enqueue path writes, by table (only those with rows)."""
    counts = {}
    for table in TABLES:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(namespace), sql.Identifier(table))
        row = db.execute(query).fetchone()
        if row and row[0]:
            counts[table] = row[0]
    return counts


def one_line(exc: pytest.ExceptionInfo[BaseException], pattern: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and len(message) < 300, message[:500]
    assert re.fullmatch(pattern, message), message


LONG = "the limit is 255"
#: (request fields, the error's message as a regex). Task "t" unless the fields say otherwise.
BAD: dict[str, tuple[dict[str, Any], str]] = {
    "NUL in the task name": ({"task": "t\x00"}, r"task name 't\\x00' is not storable: NUL character"),
    "1 MB task name": ({"task": "t" * MB}, rf"task name 't+\.\.\.t' is 1048576 characters long; {LONG}"),
    "NUL in the queue": ({"queue": "q\x00"}, r"t: queue 'q\\x00' is not storable: NUL character"),
    "1 MB queue": ({"queue": "q" * MB}, rf"t: queue 'q+\.\.\.q' is 1048576 characters long; {LONG}"),
    "NUL in the id": ({"task_id": "i\x00"}, r"task_id 'i\\x00' is not storable: NUL character"),
    "1 MB id": ({"task_id": "i" * MB}, rf"task_id 'i+\.\.\.i' is 1048576 characters long; {LONG}"),
    "NUL in a header key": (
        {"headers": {"k\x00": "v"}},
        r"t: header key 'k\\x00' is not storable: NUL character",
    ),
    "1 MB header key": (
        {"headers": {"k" * MB: "v"}},
        rf"t: header key 'k+\.\.\.k' is 1048576 characters long; {LONG}",
    ),
    "NUL in a header value": (
        {"headers": {"k": "v\x00"}},
        r"t: headers is not storable: NUL character at \$\.k",
    ),
    "10 MB header": (
        {"headers": {"k": "v" * 10 * MB}},
        r"t: headers is 10485768 bytes of JSON; the limit is 1048576 \(max_payload_bytes\)",
    ),
    "NUL in kwargs": (
        {"kwargs": {"a": {"b": "x\x00"}}},
        r"t: argument 'a' is not storable: NUL character at \$\.b",
    ),
    "NUL in an argument name": ({"kwargs": {"a\x00": 1}}, r"t: argument name 'a\\x00' is not storable: .*"),
    "kwargs nested 10,000 deep": (
        {"kwargs": {"ok": 1, "a": nested(10_000)}},
        r"t: argument 'a' is nested more than 100 levels deep",
    ),
    "kwargs nested 101 deep": (
        {"kwargs": {"a": {"b": nested(99)}}},
        r"t: argument 'a' is nested more than 100 levels deep",
    ),
    "10 MB kwargs": (
        {"kwargs": {"ok": 1, "a": "x" * 10 * MB}},
        r"t: argument 'a' is 10485762 bytes of JSON; the limit is 1048576 \(max_payload_bytes\)",
    ),
    "1 MB in each of two arguments": (
        {"kwargs": {"a": "x" * (MB // 2), "b": "y" * (MB // 2)}},
        r"t: kwargs is 1048591 bytes of JSON; the limit is 1048576 \(max_payload_bytes\)",
    ),
    "a countdown of 10^30 seconds": (
        {"countdown": 1e30},
        r"countdown 1e\+30 is longer than the maximum, 3650d \(about 10 years\)",
    ),
}


def request(fields: dict[str, Any]) -> EnqueueRequest:
    return EnqueueRequest(**{"task": "t", **fields})


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_error_naming_it_and_its_batch_writes_nothing(
    app: Stem, db: Db, database_url: str, case: str
) -> None:
    fields, message = BAD[case]
    with pytest.raises(TaskError) as caught:
        app.enqueue_many([request(fields)])
    one_line(caught, f"enqueue_many item 0: {message}")
    with pytest.raises(TaskError) as caught:
        fields = {**fields}
        app.enqueue(fields.pop("task", "t"), fields.pop("kwargs", None), **fields)
    one_line(caught, message)
    fields = BAD[case][0]
    statements = [EnqueueRequest("t", {"i": i}) for i in range(5)]
    statements[3] = request(fields)
    with pytest.raises(TaskError) as caught:
        app.enqueue_many(statements)
    one_line(caught, f"enqueue_many item 3: {message}")
    copied: list[EnqueueRequest | tuple[str, dict[str, Any]]] = [("t", {"i": i}) for i in range(500)]
    copied[300] = request(fields)
    with pytest.raises(TaskError) as caught:  # found while the COPY streams: it inserts nothing
        app.enqueue_many(copied)
    one_line(caught, f"enqueue_many item 300: {message}")
    with psycopg.connect(database_url) as conn:  # in the caller's transaction, which stays usable
        with pytest.raises(TaskError, match=r"^enqueue_many item 300: "):
            app.enqueue_many(copied, connection=conn)
        conn.execute("SELECT 1")
    assert written(db, app.namespace) == {}


async def test_async_enqueue_names_the_item_too(app: Stem, db: Db) -> None:
    with pytest.raises(TaskError) as caught:
        await app.aenqueue_many([("t", {}), ("t", {"a": nested(10_000)})])
    one_line(caught, r"enqueue_many item 1: t: argument 'a' is nested more than 100 levels deep")
    with pytest.raises(TaskError) as caught:
        await app.aenqueue("t", {}, queue="q" * MB)
    one_line(caught, rf"t: queue 'q+\.\.\.q' is 1048576 characters long; {LONG}")
    assert written(db, app.namespace) == {}
    await app.aclose()


def test_the_limits_are_inclusive(app: Stem, db: Db) -> None:
    """What is just within each limit is stored: the limits refuse only what is beyond them."""
    app.enqueue(
        "t" * 255, {"a": {"b": nested(98)}}, queue="q" * 255, task_id="i" * 255, headers={"k" * 255: 1}
    )
    app.enqueue("t", {"a": "x" * (MB - 8)}, countdown=timedelta(days=3650))
    assert written(db, app.namespace) == {"jobs": 2}


def test_the_payload_limit_is_configurable(database_url: str, namespace: str, db: Db) -> None:
    small = Stem(database_url, namespace=namespace, config=StemConfig(), max_payload_bytes=4096)
    with pytest.raises(TaskError) as caught:
        small.enqueue("t", {"a": "x" * 5000})
    one_line(caught, r"t: argument 'a' is 5002 bytes of JSON; the limit is 4096 \(max_payload_bytes\)")
    small.enqueue("t", {"a": "x" * 4000})
    small.close()
    from_env = StemConfig.from_environment({"STEM_MAX_PAYLOAD_BYTES": str(16 * MB)})
    big = Stem(database_url, namespace=namespace, config=from_env)
    big.enqueue("t", {"a": "x" * 10 * MB})
    big.close()
    assert written(db, namespace) == {"jobs": 2}
    with pytest.raises(ConfigError, match=r"^STEM_MAX_PAYLOAD_BYTES: 'lots' is not a whole number$"):
        StemConfig.from_environment({"STEM_MAX_PAYLOAD_BYTES": "lots"})
    with pytest.raises(
        TaskError, match=r"^max_payload_bytes must be a whole number of bytes >= 1024, got 10$"
    ):
        Stem(database_url, namespace=namespace, config=StemConfig(), max_payload_bytes=10)
    with pytest.raises(
        TaskError, match=r"^max_payload_bytes must be a whole number of bytes >= 1024, got 0$"
    ):
        Stem(database_url, namespace=namespace, config=StemConfig(), max_payload_bytes=0)


@pytest.mark.parametrize(
    ("canvas", "message"),
    [
        (
            lambda app: chain(app.signature("t", a=1), app.signature("t", a=nested(10_000))),
            r"chain link 1: t: argument 'a' is nested more than 100 levels deep",
        ),
        (
            lambda app: group(app.signature("t"), app.signature("t").set(queue="q\x00")),
            r"group member 1: t: queue 'q\\x00' is not storable: NUL character",
        ),
        (
            lambda app: chord([app.signature("t")], app.signature("t", a="x" * 2 * MB)),
            r"chord callback: t: argument 'a' is 2097154 bytes of JSON; the limit is 1048576 .*",
        ),
    ],
)
def test_a_bad_canvas_member_is_named_and_nothing_is_written(
    app: Stem, db: Db, canvas: Any, message: str
) -> None:
    with pytest.raises(TaskError) as caught:
        app.apply(canvas(app))
    one_line(caught, message)
    assert written(db, app.namespace) == {}


def test_bad_workflow_input_is_named_and_nothing_is_written(app: Stem, db: Db) -> None:
    @app.workflow(name="wf.bad")
    async def flow(ctx: Any, **params: Any) -> None:
        return None

    with pytest.raises(TaskError) as caught:
        app.start_workflow("wf.bad", {"p": "x" * 2 * MB})
    one_line(
        caught,
        r"workflow 'wf.bad': params is 2097160 bytes of JSON; the limit is 1048576 \(max_payload_bytes\)",
    )
    with pytest.raises(TaskError) as caught:
        app.start_workflow("wf.bad", {"p": nested(10_000)})
    one_line(caught, r"workflow 'wf.bad': params is nested more than 100 levels deep")
    with pytest.raises(TaskError) as caught:
        app.start_workflow("wf.bad", {}, run_id="r\x00")
    one_line(caught, r"run_id 'r\\x00' is not storable: NUL character")
    with pytest.raises(TaskError) as caught:
        app.emit("topic\x00", {})
    one_line(caught, r"event topic 'topic\\x00' is not storable: NUL character")
    assert written(db, app.namespace) == {}


ROUTING = """
broadcasts:
  ctl: {delivery: at-least-once}
routes:
  - match: {task: "ctl.*"}
    target: {type: broadcast, name: ctl}
"""


@pytest.fixture
def bapp(database_url: str, namespace: str) -> Iterator[Stem]:
    stem = Stem(database_url, namespace=namespace, routing=load_routing_yaml(ROUTING), config=StemConfig())
    yield stem
    stem.close()


def test_bad_broadcasts_are_named_and_nothing_is_published(bapp: Stem, db: Db) -> None:
    with pytest.raises(TaskError) as caught:
        bapp.broadcast("ctl", "ctl.x", {"a": nested(10_000)})
    one_line(caught, r"ctl.x: argument 'a' is nested more than 100 levels deep")
    with pytest.raises(TaskError) as caught:
        bapp.broadcast("ctl", "ctl.x", headers={"k" * 300: 1})
    one_line(caught, rf"ctl.x: header key 'k+\.\.\.k' is 300 characters long; {LONG}")
    batch: list[tuple[str, dict[str, Any]]] = [("t", {}), ("ctl.x", {}), ("ctl.y", {"a": "x" * 2 * MB})]
    with pytest.raises(TaskError) as caught:
        bapp.enqueue_many(batch)
    one_line(caught, r"enqueue_many item 2: ctl.y: argument 'a' is 2097154 bytes of JSON; .*")
    assert written(db, bapp.namespace) == {}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"kwargs": {"a": nested(10_000)}},
            r"entry 's': kwargs: is nested more than 100 levels deep",
        ),
        (
            {"kwargs": {"a": "x" * 2 * MB}},
            r"entry 's': kwargs: is 2097160 bytes of JSON; the limit is 1048576 \(max_payload_bytes\)",
        ),
        ({"queue": "q\x00"}, r"entry 's': queue: 'q\\x00' is not storable: NUL character"),
        ({"task": "t" * 300}, rf"entry 's': task: 't+\.\.\.t' is 300 characters long; {LONG}"),
        (
            {"spec": IntervalSpec(1e30)},
            r"entry 's': spec.every: 1e\+30 is not between 0 and 3650d \(about 10 years\)",
        ),
    ],
)
def test_bad_schedule_entries_are_named_by_dry_run_and_apply_alike(
    app: Stem, db: Db, entry: dict[str, Any], message: str
) -> None:
    good = ScheduleEntry(name="good", task="t", spec=IntervalSpec(60))
    bad = ScheduleEntry(**{"name": "s", "task": "t", "spec": IntervalSpec(60), **entry})
    for dry_run in (True, False):
        with pytest.raises(ScheduleError) as caught:
            app.schedules.apply([good, bad], dry_run=dry_run)
        one_line(caught, message)
    with pytest.raises(ScheduleError) as caught:
        app.schedules.save(bad)
    one_line(caught, message)
    assert written(db, app.namespace) == {}


def test_lookups_and_edits_by_a_bad_name_or_id_are_clear(app: Stem) -> None:
    """Not only writes: reading or editing by a name or id Postgres cannot hold is no DataError."""
    assert app.schedules.get("s\x00") is None
    assert app.schedules.fires("s\x00") == []
    checks: list[tuple[Callable[[], object], str]] = [
        (lambda: app.cancel_workflow("r\x00"), r"run_id 'r\\x00' is not storable: NUL character"),
        (
            lambda: app.cancel_workflow("r", reason="why\x00"),
            r"reason 'why\\x00' is not storable: NUL character",
        ),
        (lambda: app.rewind_workflow("r", "s\x00"), r"step 's\\x00' is not storable: NUL character"),
        (lambda: app.revoke("i\x00"), r"task id 0 'i\\x00' is not storable: NUL character"),
        (lambda: app.revoke("i", reason="why\x00"), r"reason 'why\\x00' is not storable: NUL character"),
        (lambda: app.lock("k\x00", 10).__enter__(), r"lock key 'k\\x00' is not storable: NUL character"),
        (lambda: app.result("i" * 300), r"task_id 'i+\.\.\.i' is 300 characters long; the limit is 255"),
    ]
    for call, pattern in checks:
        with pytest.raises(TaskError) as caught:
            call()
        one_line(caught, pattern)
