"""``@app.periodic``: entries declared in code, checked when declared, and synced into the
schedule store (``origin = 'code'``) beside the entries applied from files."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from stem_pg.beat.scheduler import Beat
from stem_pg.client.app import Stem
from stem_pg.client.schedules import Schedules
from stem_pg.config.schedule_file import load_schedule_yaml
from stem_pg.core.errors import ScheduleError

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def schedules(app: Stem) -> Schedules:
    return Schedules(app.url, app.namespace, clock=lambda: NOW)


def declare(app: Stem) -> None:
    """Two tasks, ``@app.periodic`` above ``@app.task`` and below it."""

    @app.periodic(every="30s", name="tick", args=(1,), kwargs={"b": 2})
    @app.task(name="t.tick")
    def tick(a: int, b: int) -> None: ...

    @app.task(name="t.nightly")
    @app.periodic(cron="0 2 * * *", timezone="Europe/Paris", name="nightly", queue="reports")
    def nightly() -> None: ...


def summary(schedules: Schedules) -> dict[str, tuple[Any, ...]]:
    return {r.name: (r.task, r.spec, r.kwargs, r.queue, r.enabled, r.origin) for r in schedules.list()}


def test_declared_entries_are_synced_into_the_store(app: Stem, schedules: Schedules) -> None:
    declare(app)
    plan = schedules.sync_code(app.periodic_entries.entries(app.registry))
    assert [(c.action, c.name) for c in plan.changes] == [("create", "tick"), ("create", "nightly")]
    assert summary(schedules) == {
        "tick": ("t.tick", {"kind": "interval", "every": 30.0}, {"a": 1, "b": 2}, None, True, "code"),
        "nightly": (
            "t.nightly",
            {"kind": "cron", "cron": "0 2 * * *", "timezone": "Europe/Paris"},
            {},
            "reports",
            True,
            "code",
        ),
    }
    assert schedules.get("nightly").next_run_at == datetime(2026, 6, 2, 0, 0, tzinfo=UTC)  # type: ignore[union-attr]


def test_a_later_deploy_updates_and_deletes_code_entries_and_keeps_a_pause(
    database_url: str, app: Stem, schedules: Schedules
) -> None:
    declare(app)
    schedules.sync_code(app.periodic_entries.entries(app.registry))
    schedules.set_enabled("nightly", False)  # paused by an operator
    schedules.apply(load_schedule_yaml("from-file:\n  task: t.other\n  spec: every:1h\n"))
    later = Stem(database_url, namespace=app.namespace)  # the next release's code

    @later.task(name="t.nightly")
    @later.periodic(cron="0 2 * * *", timezone="Europe/Paris", name="nightly", queue="reports", priority=5)
    def nightly() -> None: ...

    @later.periodic(every="30s", name="tick")
    @later.task(name="t.tock")
    def tock() -> None: ...

    plan = schedules.sync_code(later.periodic_entries.entries(later.registry))
    changes = {c.name: (c.action, c.fields) for c in plan.changes}
    assert changes == {"tick": ("update", ("task", "kwargs")), "nightly": ("update", ("priority",))}
    rows = {r.name: r for r in schedules.list()}
    assert rows["nightly"].priority == 5 and not rows["nightly"].enabled  # the pause stays
    assert rows["from-file"].origin == "store"  # the file's entries are not the code's to prune
    after = schedules.sync_code([])
    assert [(c.action, c.name) for c in after.changes] == [("delete", "nightly"), ("delete", "tick")]
    assert list(summary(schedules)) == ["from-file"]


def test_a_file_entry_of_the_same_name_with_another_spec_is_one_clear_error(
    app: Stem, schedules: Schedules
) -> None:
    schedules.apply(load_schedule_yaml("tick:\n  task: t.tick\n  spec: every:10s\n  kwargs: {a: 1, b: 2}\n"))
    declare(app)
    with pytest.raises(ScheduleError) as caught:
        Beat(app).sync_periodic()
    assert str(caught.value) == (
        "schedule entry 'tick' is defined in the schedule store (a file?) and in code with a"
        " different spec: rename one of them"
    )
    assert summary(schedules)["tick"][1] == {"kind": "interval", "every": 10.0}  # nothing changed


def test_the_same_entry_in_a_file_and_in_code_coexists(app: Stem, schedules: Schedules) -> None:
    schedules.apply(load_schedule_yaml("tick:\n  task: t.tick\n  spec: every:30s\n  kwargs: {a: 1, b: 2}\n"))
    declare(app)
    plan = schedules.sync_code(app.periodic_entries.entries(app.registry))
    assert [(c.action, c.name) for c in plan.changes] == [("unchanged", "tick"), ("create", "nightly")]


def test_a_file_cannot_redefine_or_prune_a_code_entry(app: Stem, schedules: Schedules) -> None:
    declare(app)
    schedules.sync_code(app.periodic_entries.entries(app.registry))
    with pytest.raises(
        ScheduleError, match=r"'nightly' is defined in code \(@app.periodic\) and by this file"
    ):
        schedules.apply(load_schedule_yaml("nightly:\n  task: t.nightly\n  spec: every:1h\n"))
    plan = schedules.apply(load_schedule_yaml("other:\n  task: t.other\n  spec: every:1h\n"), prune=True)
    assert [(c.action, c.name) for c in plan.changes] == [("create", "other")]
    assert sorted(summary(schedules)) == ["nightly", "other", "tick"]


def test_bad_declarations_fail_where_they_are_made(app: Stem) -> None:
    def handler() -> None: ...

    with pytest.raises(ScheduleError, match=r"entry 'bad': spec.cron: '61 \* \* \* \*': minute field"):
        app.periodic(cron="61 * * * *", name="bad")(handler)
    with pytest.raises(ScheduleError, match=r"entry 'zone': timezone: unknown time zone 'Mars/Olympus'"):
        app.periodic(cron="0 2 * * *", timezone="Mars/Olympus", name="zone")(handler)
    with pytest.raises(ScheduleError, match=r"takes one of cron=, every= or spec=, got \['cron', 'every'\]"):
        app.periodic(cron="0 2 * * *", every="1h")
    with pytest.raises(ScheduleError, match="unknown option 'queues'"):
        app.periodic(every="1h", queues=["a"])
    app.periodic(every="1h", name="twice")(handler)
    with pytest.raises(ScheduleError, match="entry 'twice' is declared twice"):
        app.periodic(every="2h", name="twice")(handler)


def test_a_periodic_function_that_is_no_task_is_refused_at_beat_start(app: Stem) -> None:
    with pytest.raises(ScheduleError, match=r"<locals>.unnamed' is no schedule name: give the entry a name="):

        @app.periodic(every="1h")
        def unnamed() -> None: ...

    @app.periodic(every="1h", name="forgotten")
    def forgotten() -> None: ...

    with pytest.raises(
        ScheduleError, match=r"forgotten is not a task of this app: decorate it with @app.task"
    ):
        app.periodic_entries.entries(app.registry)
