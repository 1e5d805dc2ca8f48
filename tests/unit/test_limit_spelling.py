"""Spelling and checking of rate and concurrency limits (stem_pg.core.limits), on tasks and
on queues of the routing file, and which of a worker's queues need the limited claim."""

from __future__ import annotations

import pytest

from stem_pg.core.errors import RoutingConfigError, TaskError
from stem_pg.core.limits import LimitError, claim_plan, declared_limits, parse_key, parse_rate
from stem_pg.core.routing_parse import parse_parts
from stem_pg.core.tasks import TaskDefinition, TaskOptions, task_limits


@pytest.mark.parametrize(
    ("text", "per_second", "burst"),
    [("100/s", 100.0, 10.0), ("10/m", 10 / 60, 1.0), ("500/h", 500 / 3600, 1.0), (" 2.5 / s ", 2.5, 1.0)],
)
def test_rates_are_spelled_as_stem_spells_them(text: str, per_second: float, burst: float) -> None:
    rate = parse_rate(text, option="rate_limit")
    assert rate.per_second == pytest.approx(per_second)
    assert rate.burst == burst


@pytest.mark.parametrize("bad", ["100", "100/d", "0/s", "-1/s", "x/s", 100, None])
def test_a_bad_rate_names_the_option_and_the_value(bad: object) -> None:
    with pytest.raises(LimitError, match=r"^rate_limit must look like '100/s', '10/m' or '500/h', got "):
        parse_rate(bad, option="rate_limit")


def test_keys_name_one_argument_or_header() -> None:
    assert parse_key("{tenant}", option="concurrency_key") == "tenant"
    assert parse_key("tenant", option="concurrency_key") == "tenant"
    for bad in ("{tenant", "{a}{b}", "", "{}", 3):
        with pytest.raises(LimitError, match=r"^concurrency_key must name one argument or header"):
            parse_key(bad, option="concurrency_key")


def test_task_options_check_their_limits_when_the_task_is_declared() -> None:
    with pytest.raises(TaskError, match="rate_limit must look like"):
        TaskOptions(rate_limit="fast")
    with pytest.raises(TaskError, match="concurrency_limit must be a whole number >= 1, got 0"):
        TaskOptions(concurrency_limit=0)
    with pytest.raises(TaskError, match="concurrency_key needs a concurrency_limit"):
        TaskOptions(concurrency_key="{tenant}")
    with pytest.raises(TaskError, match="group_rate_limit and group_rate_key go together"):
        TaskOptions(group_rate_limit="5/s")
    definition = TaskDefinition.build(
        "t.x", lambda tenant: None, TaskOptions(concurrency_limit=3, concurrency_key="{tenant}")
    )
    limits = task_limits(definition)
    assert (limits.scope, limits.concurrency, limits.concurrency_key) == ("task:t.x", 3, "tenant")
    assert limits.spec() == {
        "fail_open": True,
        "concurrency": 3,
        "concurrency_key": "tenant",
        "fair_key": "tenant",
    }


def test_queues_take_limits_in_the_routing_file_in_either_spelling() -> None:
    _, queues, _, _ = parse_parts(
        {"queues": {"api": {"rateLimit": "10/s", "concurrency_limit": 4, "limitsFailOpen": False}}}
    )
    limits = queues["api"].limits
    assert (limits.scope, limits.concurrency, limits.fail_open) == ("queue:api", 4, False)
    assert limits.rate is not None and limits.rate.per_second == 10
    with pytest.raises(RoutingConfigError, match=r"queues\.api: concurrency_limit must be a whole number"):
        parse_parts({"queues": {"api": {"concurrency_limit": "many"}}})


def test_only_limited_queues_get_the_limited_claim() -> None:
    queue = declared_limits("queue:slow", concurrency_limit=2)
    own = {"slow": queue, "fast": declared_limits("queue:fast")}
    plan = claim_plan(["default", "slow", "fast"], [declared_limits("task:t.y")], own)
    assert plan.queues == {"slow"}
    assert plan.specs["slow"]["queue"] == {"fail_open": True, "concurrency": 2}
    assert [(r["kind"], r["scope"]) for r in plan.rows] == [("concurrency", "queue:slow")]
    assert claim_plan(["default"], [], {}).queues == frozenset()


def test_a_limited_task_puts_every_queue_of_the_worker_on_the_limited_claim() -> None:
    # It may be sent to any of them (queue=), and its limits hold there too.
    task = declared_limits("task:t.x", rate_limit="5/s")
    queue = declared_limits("queue:slow", concurrency_limit=2)
    plan = claim_plan(
        ["default", "slow", "fast"], [task], {"slow": queue, "fast": declared_limits("queue:fast")}
    )
    assert plan.queues == {"default", "slow", "fast"}
    assert plan.specs["fast"]["tasks"] == {"t.x": {"fail_open": True, "rate": True}}
    assert "queue" not in plan.specs["fast"]
    assert [(r["kind"], r["scope"]) for r in plan.rows] == [
        ("rate", "task:t.x"),
        ("concurrency", "queue:slow"),
    ]
