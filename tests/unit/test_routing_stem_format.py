"""Stem's routing format in full: every key Stem's parser accepts (snake_case and camelCase),
its precedence (priority_override over the sender's hint, clamped), queue_override, task-glob
lists, and meta/bindings/options kept read-only; bad values still fail on one line."""

from __future__ import annotations

import json

import pytest

from stem_pg.config.routing_file import load_routing_yaml
from stem_pg.core.errors import RoutingConfigError
from stem_pg.core.planning import EnqueueRequest, Planner
from stem_pg.core.routing import (
    DefaultQueue,
    PriorityRange,
    QueueBinding,
    RouteMatch,
    RoutingConfig,
)
from stem_pg.core.routing_registry import RoutingInfo, RoutingRegistry
from stem_pg.core.tasks import TaskRegistry
from tests.routing_examples import STEM_ROUTING


@pytest.fixture
def registry() -> RoutingRegistry:
    return RoutingRegistry(load_routing_yaml(STEM_ROUTING, source="stem.yaml"))


def load_error(text: str) -> str:
    with pytest.raises(RoutingConfigError) as info:
        load_routing_yaml(text, source="stem.yaml")
    return str(info.value)


def test_stem_file_loads_with_camel_case_keys(registry: RoutingRegistry) -> None:
    config = registry.config
    assert config.default_queue == DefaultQueue("default", "primary", ("secondary",))
    primary = config.queues["primary"]
    assert (primary.exchange, primary.routing_key) == ("jobs", "jobs.default")
    assert primary.priority_range == PriorityRange(1, 5)
    assert primary.bindings == (QueueBinding("jobs.#", {"region": "eu"}, 2),)
    assert primary.meta == {"owner": "billing", "limits": {"rate": 10}}
    assert config.broadcasts["control"].meta == {"scope": "fleet"}
    first, second, _ = config.routes
    assert first.match.patterns == ("reports.*", "invoices.*")
    assert first.priority_override == 7
    assert (second.match.queue_override, second.priority_override) == ("secondary", 8)
    assert second.options == {"note": "promoted"}


def test_a_list_of_task_globs_matches_any(registry: RoutingRegistry) -> None:
    assert registry.resolve("reports.daily").name == "primary"
    assert registry.resolve("invoices.monthly").name == "primary"
    assert registry.resolve("reports").route is None  # falls to the default queue, no rule
    assert RouteMatch(("a.*", "b.*")).matches("b.x", {})
    assert not RouteMatch(("a.*", "b.*")).matches("c.x", {})


def test_priority_override_wins_over_the_hint_and_is_clamped(registry: RoutingRegistry) -> None:
    # Route override 7, queue range 1..5: Stem clamps the override into the range.
    assert registry.resolve("reports.daily").priority == 5
    assert registry.resolve("reports.daily", priority=0).priority == 5
    assert registry.resolve("reports.daily", priority=9).priority == 5
    # Without a rule the hint is clamped into the default queue's range.
    assert registry.resolve("other", priority=0).priority == 1


def test_priority_override_beats_priority_and_priority_yields_to_the_hint() -> None:
    text = (
        "queues:\n  default: {}\nroutes:\n"
        "  - match: {task: a}\n    target: {name: default}\n    priority: 6\n"
        "  - match: {task: b}\n    target: {name: default}\n    priority: 6\n    priority_override: 2\n"
    )
    registry = RoutingRegistry(load_routing_yaml(text))
    assert registry.resolve("a").priority == 6
    assert registry.resolve("a", priority=3).priority == 3
    assert registry.resolve("b", priority=3).priority == 2


def test_queue_override_applies_only_to_tasks_sent_to_that_queue(registry: RoutingRegistry) -> None:
    sent = registry.resolve("anything", queue="secondary", priority=1)
    assert (sent.name, sent.priority) == ("urgent", 8)
    assert sent.route is registry.config.routes[1]
    assert registry.resolve("anything").name == "primary"  # not sent to secondary: default queue
    assert registry.resolve("anything", queue="primary").name == "primary"
    # The explicit queue still wins over rules without queue_override.
    assert registry.resolve("reports.daily", queue="urgent").name == "urgent"


def test_queue_override_resolves_the_default_alias() -> None:
    text = (
        "default_queue: {alias: default, queue: main}\nqueues:\n  main: {}\n  side: {}\n"
        "routes:\n  - match: {task: '*', queue_override: default}\n    target: {name: side}\n"
    )
    registry = RoutingRegistry(load_routing_yaml(text))
    assert registry.resolve("t", queue="default").name == "side"
    assert registry.resolve("t", queue="main").name == "side"
    assert registry.resolve("t").name == "main"
    assert registry.has_queue_overrides


def test_default_queue_without_queue_is_the_alias_as_in_stem() -> None:
    config = load_routing_yaml("default_queue: {alias: primary}\nqueues:\n  primary: {}\n")
    assert config.default_queue == DefaultQueue("primary", "primary")


def test_target_type_is_case_insensitive_and_range_bounds_may_be_text() -> None:
    text = "queues:\n  default:\n    priority_range: ['2', '4']\nroutes:\n"
    text += "  - match: {task: a}\n    target: {type: Queue, name: default}\n"
    config = load_routing_yaml(text)
    assert config.queues["default"].priority_range == PriorityRange(2, 4)
    assert config.routes[0].target.type == "queue"


def test_meta_and_options_are_read_only(registry: RoutingRegistry) -> None:
    meta = registry.config.queues["primary"].meta
    with pytest.raises(TypeError):
        meta["owner"] = "someone else"  # type: ignore[index]
    with pytest.raises(TypeError):
        meta["limits"]["rate"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        registry.config.routes[1].options["note"] = "x"  # type: ignore[index]


def test_to_dict_is_json_and_round_trips(registry: RoutingRegistry) -> None:
    data = json.loads(json.dumps(registry.config.to_dict()))
    assert data["queues"]["primary"]["meta"] == {"owner": "billing", "limits": {"rate": 10}}
    assert data["routes"][0]["match"]["task"] == ["reports.*", "invoices.*"]
    again = RoutingConfig.from_mapping(data)
    assert again.to_dict() == registry.config.to_dict()


def test_routing_info_names_queue_channel_and_meta(registry: RoutingRegistry) -> None:
    assert registry.info("urgent", 8) == RoutingInfo("urgent", 8, None, {"tier": "gold"})
    assert registry.info("broadcast:control", 0) == RoutingInfo(None, 0, "control", {"scope": "fleet"})
    assert registry.info("secondary", 3).meta == {}
    assert registry.info("never-defined", 3) == RoutingInfo("never-defined", 3)  # never raises
    assert RoutingRegistry().info("broadcast:gone", 0).broadcast == "gone"


Q = "default_queue: primary\nqueues:\n  primary: {}\n"  # 3 lines: a valid topology
ROUTE = Q + "routes:\n  - match: {task: a.*}\n    target: {name: primary}\n"  # routes[0] ends on line 6

BAD = [
    (
        "queues:\n  primary:\n    priorityRang: [0, 5]\n",
        3,
        "queues.primary.priorityRang",
        "did you mean 'priorityRange'?",
    ),
    (
        "queues:\n  primary:\n    priorityRange: [5, 2]\n",
        3,
        "queues.primary.priorityRange",
        "min 5 is greater than max 2",
    ),
    (
        "queues:\n  primary:\n    routing_key: a\n    routingKey: b\n",
        4,
        "queues.primary.routingKey",
        "give either 'routing_key' or 'routingKey', not both",
    ),
    (
        "defaultQueue:\n  queue: nope\nqueues:\n  primary: {}\n",
        2,
        "default_queue.queue",
        "queue 'nope' is not defined",
    ),
    (
        Q + "routes:\n  - match:\n      task: [a.*, 3]\n    target: {name: primary}\n",
        6,
        "routes[0].match.task[1]",
        "must be a string, got an integer (3)",
    ),
    (
        Q + "routes:\n  - match:\n      task: []\n    target: {name: primary}\n",
        6,
        "routes[0].match.task",
        "needs at least one pattern",
    ),
    (
        Q + "routes:\n  - match:\n      task: [a.*, '']\n    target: {name: primary}\n",
        6,
        "routes[0].match.task[1]",
        "task pattern must be a non-empty string",
    ),
    (
        Q + "routes:\n  - match:\n      task: {a: 1}\n    target: {name: primary}\n",
        6,
        "routes[0].match.task",
        "must be a string or a list of strings, got a mapping",
    ),
    (
        Q + "routes:\n  - match:\n      task: a\n      queueOverride: ghost\n    target: {name: primary}\n",
        7,
        "routes[0].match.queue_override",
        "queue 'ghost' is not defined in queues; known: 'primary'",
    ),
    (ROUTE + "    priorityOverride: high\n", 7, "routes[0].priorityOverride", "priority must be an integer"),
    (
        ROUTE + "    priority_override: 300\n",
        7,
        "routes[0].priority_override",
        "priority 300 is outside 0..255",
    ),
    (
        ROUTE + "    priority_overide: 3\n",
        7,
        "routes[0].priority_overide",
        "did you mean 'priority_override'?",
    ),
    (ROUTE + "    options: 3\n", 7, "routes[0].options", "expected a mapping, got an integer (3)"),
    ("queues:\n  primary:\n    meta: [1]\n", 3, "queues.primary.meta", "expected a mapping, got a list"),
    ("queues:\n  primary:\n    metadata: {}\n", 3, "queues.primary.metadata", "did you mean 'meta'?"),
    ("queues:\n  primary:\n    bindings: k\n", 3, "queues.primary.bindings", "expected a list"),
    (
        "queues:\n  primary:\n    bindings:\n      - headers: {a: b}\n",
        4,
        "queues.primary.bindings[0]",
        "a binding needs a 'routing_key'",
    ),
    (
        "queues:\n  primary:\n    bindings:\n      - routingKey: k\n        weight: heavy\n",
        5,
        "queues.primary.bindings[0].weight",
        "must be an integer, got a string ('heavy')",
    ),
    (
        "queues:\n  primary:\n    bindings:\n      - routing_key: k\n        wieght: 1\n",
        5,
        "queues.primary.bindings[0].wieght",
        "did you mean 'weight'?",
    ),
    ("broadcasts:\n  c:\n    meta: x\n", 3, "broadcasts.c.meta", "expected a mapping, got a string ('x')"),
    ("broadcasts:\n  c:\n    metta: {}\n", 3, "broadcasts.c.metta", "did you mean 'meta'?"),
]


@pytest.mark.parametrize(("text", "line", "key", "reason"), BAD)
def test_bad_stem_keys_name_file_line_and_key(text: str, line: int, key: str, reason: str) -> None:
    message = load_error(text)
    assert message.startswith(f"stem.yaml:{line}: {key}: "), message
    assert reason in message
    assert "\n" not in message


def test_planner_follows_queue_override_to_a_broadcast() -> None:
    text = (
        "queues:\n  default: {}\n  ops: {}\nbroadcasts:\n  fleet: {meta: {scope: all}}\n"
        "routes:\n  - match: {task: 'ops.*', queueOverride: ops}\n"
        "    target: {type: broadcast, name: fleet}\n"
    )
    planner = Planner(TaskRegistry(), RoutingRegistry(load_routing_yaml(text)), default_max_retries=3)
    requests = [EnqueueRequest("ops.restart"), EnqueueRequest("ops.restart", queue="ops")]
    assert {index: spec.channel for index, spec in planner.plan_routed(requests).items()} == {1: "fleet"}
    assert planner.plan(requests[0]).queue == "default"


def test_default_is_always_an_alias_of_the_default_queue_as_in_stem() -> None:
    text = (
        "default_queue: {alias: main, queue: primary}\nqueues:\n  primary: {}\n  side: {}\n"
        "routes:\n  - match: {task: a}\n    target: {name: default}\n"
    )
    registry = RoutingRegistry(load_routing_yaml(text))
    assert registry.resolve("a").name == "primary"
    assert registry.resolve("b", queue="default").name == "primary"
    assert registry.resolve("b", queue="main").name == "primary"
