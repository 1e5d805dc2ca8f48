"""Routing configuration: loading, validation messages, resolution, subscriptions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stem_pg.config.routing_file import load_routing, load_routing_file, load_routing_yaml
from stem_pg.core.errors import RoutingConfigError
from stem_pg.core.routing import (
    BroadcastDefinition,
    DefaultQueue,
    PriorityRange,
    QueueDefinition,
    RouteDefinition,
    RouteMatch,
    RouteTarget,
    RoutingConfig,
)
from stem_pg.core.routing_registry import RoutingRegistry, RoutingSubscription
from tests.helpers import ROUTING_EXAMPLE

SMALL_RANGE = """\
default_queue: priority
queues:
  priority:
    priority_range: {min: 0, max: 5}
"""


@pytest.fixture
def registry() -> RoutingRegistry:
    return RoutingRegistry(load_routing_yaml(ROUTING_EXAMPLE, source="routing.yaml"))


def load_error(text: str) -> str:
    with pytest.raises(RoutingConfigError) as info:
        load_routing_yaml(text, source="routing.yaml")
    return str(info.value)


# --- the example file ---------------------------------------------------------


def test_example_loads_into_typed_config() -> None:
    config = load_routing_yaml(ROUTING_EXAMPLE, source="routing.yaml")
    assert config.source == "routing.yaml"
    assert config.default_queue == DefaultQueue("default", "primary", ("secondary",))
    assert config.queues["primary"] == QueueDefinition("primary", "jobs", "jobs.default", PriorityRange(0, 9))
    assert config.queues["secondary"] == QueueDefinition("secondary")
    assert config.broadcasts["updates"].delivery == "at-most-once"
    assert [route.target.name for route in config.routes] == ["primary", "control"]


def test_task_routes_to_queue(registry: RoutingRegistry) -> None:
    resolved = registry.resolve("reports.daily")
    assert (resolved.kind, resolved.name, resolved.priority) == ("queue", "primary", 0)
    assert resolved.route is registry.config.routes[0]


def test_task_routes_to_broadcast(registry: RoutingRegistry) -> None:
    resolved = registry.resolve("control.x")
    assert (resolved.kind, resolved.name) == ("broadcast", "control")
    assert resolved.route is registry.config.routes[1]


def test_unrouted_task_goes_to_default_queue(registry: RoutingRegistry) -> None:
    resolved = registry.resolve("email.send")
    assert (resolved.kind, resolved.name, resolved.route) == ("queue", "primary", None)


def test_explicit_queue_wins_and_alias_resolves(registry: RoutingRegistry) -> None:
    assert registry.resolve("reports.daily", queue="secondary").name == "secondary"
    assert registry.resolve("reports.daily", queue="secondary").route is None
    assert registry.resolve("email.send", queue="default").name == "primary"


def test_unknown_explicit_queue_names_known_queues(registry: RoutingRegistry) -> None:
    with pytest.raises(RoutingConfigError) as info:
        registry.resolve("email.send", queue="tertiary")
    message = str(info.value)
    assert "routing.yaml" in message
    assert "'tertiary'" in message
    assert "'primary', 'secondary'" in message


def test_glob_is_case_sensitive(registry: RoutingRegistry) -> None:
    assert registry.resolve("Reports.daily").route is None


def test_registry_accessors(registry: RoutingRegistry) -> None:
    assert registry.queue_names() == ("primary", "secondary")
    assert registry.fallbacks == ("secondary",)
    assert registry.default_queue == "primary"
    assert registry.queue("default").name == "primary"
    assert registry.broadcast("updates").delivery == "at-most-once"
    with pytest.raises(RoutingConfigError, match="unknown broadcast 'nope'"):
        registry.broadcast("nope")


def test_to_dict_is_json_and_round_trips() -> None:
    config = load_routing_yaml(ROUTING_EXAMPLE)
    data = json.loads(json.dumps(config.to_dict()))
    assert data["queues"]["primary"]["priority_range"] == {"min": 0, "max": 9}
    assert RoutingConfig.from_mapping(data) == config


# --- priorities ------------------------------------------------------------------


def test_priority_is_clamped_into_queue_range() -> None:
    registry = RoutingRegistry(load_routing_yaml(SMALL_RANGE))
    assert registry.resolve("any", priority=8).priority == 5
    assert registry.resolve("any", priority=-3).priority == 0
    assert registry.resolve("any", priority=4).priority == 4
    assert registry.resolve("any", queue="default", priority=200).priority == 5


def test_default_priority_is_queue_minimum_when_above_zero() -> None:
    text = "default_queue: q\nqueues:\n  q:\n    priority_range: [3, 7]\n"
    assert RoutingRegistry(load_routing_yaml(text)).resolve("any").priority == 3


def test_both_priority_range_forms_are_equal() -> None:
    as_list = load_routing_yaml("queues:\n  default:\n    priority_range: [2, 4]\n")
    as_map = load_routing_yaml("queues:\n  default:\n    priority_range:\n      min: 2\n      max: 4\n")
    assert as_list.queues["default"].priority_range == PriorityRange(2, 4)
    assert as_map.queues == as_list.queues


def test_route_priority_applies_unless_hinted() -> None:
    text = """\
queues:
  default: {}
  fast:
    priority_range: [0, 5]
routes:
  - match: {task: urgent.*}
    target: {type: queue, name: fast}
    priority: 9
"""
    registry = RoutingRegistry(load_routing_yaml(text))
    assert registry.resolve("urgent.page").priority == 5  # clamped route priority
    assert registry.resolve("urgent.page", priority=2).priority == 2


def test_broadcast_priority_uses_default_range(registry: RoutingRegistry) -> None:
    assert registry.resolve("control.stop", priority=50).priority == 9
    assert registry.resolve("control.stop", priority=4).priority == 4


def test_priority_range_rejects_bad_values_in_code() -> None:
    with pytest.raises(RoutingConfigError, match="min 5 is greater than max 2"):
        PriorityRange(5, 2)
    with pytest.raises(RoutingConfigError, match="boolean"):
        PriorityRange(True, 5)  # bool is not a priority
    assert PriorityRange(0, 5).clamp(9) == 5


# --- matching on headers -------------------------------------------------------------

HEADERS = """\
queues:
  default: {}
  acme: {}
routes:
  - match:
      task: billing.*
      headers: {tenant: acme}
    target: {name: acme}
"""


def test_headers_and_task_must_both_match() -> None:
    registry = RoutingRegistry(load_routing_yaml(HEADERS))
    assert registry.resolve("billing.run", headers={"tenant": "acme"}).name == "acme"
    assert registry.resolve("billing.run", headers={"tenant": "other"}).name == "default"
    assert registry.resolve("billing.run").name == "default"
    assert registry.resolve("email.send", headers={"tenant": "acme"}).name == "default"


# --- shapes that are allowed ---------------------------------------------------------------


def test_null_queue_entry_and_default_queue_shorthand() -> None:
    config = load_routing_yaml("default_queue: work\nqueues:\n  work:\n  other: {}\n")
    assert config.default_queue == DefaultQueue(queue="work")
    assert config.queues["work"] == QueueDefinition("work")


def test_default_queue_is_implicit_without_queues() -> None:
    registry = RoutingRegistry(load_routing_yaml("default_queue:\n  queue: jobs\n"))
    assert registry.queue_names() == ("jobs",)
    assert registry.resolve("any").name == "jobs"
    assert registry.resolve("any", queue="adhoc").name == "adhoc"  # open topology


def test_programmatic_config_like_the_dart_inline_example() -> None:
    config = RoutingConfig(
        default_queue=DefaultQueue(alias="default", queue="primary"),
        queues={"primary": QueueDefinition("primary")},
        routes=(RouteDefinition(RouteMatch(task="reports.*"), RouteTarget("queue", "primary")),),
    )
    assert RoutingRegistry(config).resolve("reports.x").route is config.routes[0]


def test_programmatic_config_is_validated_too() -> None:
    with pytest.raises(RoutingConfigError, match=r"routes\[0\]\.target\.name: queue 'ghost'"):
        RoutingConfig(
            queues={"default": QueueDefinition("default")},
            routes=(RouteDefinition(RouteMatch(task="*"), RouteTarget("queue", "ghost")),),
        )
    with pytest.raises(RoutingConfigError, match="delivery: must be one of"):
        BroadcastDefinition("b", delivery="sometimes")  # type: ignore[arg-type]


def test_from_mapping_without_locator_names_key() -> None:
    with pytest.raises(RoutingConfigError) as info:
        RoutingConfig.from_mapping({"queues": {"q": {"priority_range": [1]}}})
    assert str(info.value).startswith("<string>: queues.q.priority_range:")


# --- legacy mode and files ---------------------------------------------------------------


def test_legacy_config_accepts_any_queue() -> None:
    registry = RoutingRegistry()
    assert registry.config == RoutingConfig.legacy()
    assert registry.queue_names() == ("default",)
    assert registry.resolve("any").name == "default"
    assert registry.resolve("any", queue="emails", priority=42).priority == 9
    assert RoutingRegistry(RoutingConfig.legacy("jobs")).resolve("x", queue="default").name == "jobs"


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_empty_document_is_legacy(text: str) -> None:
    config = load_routing_yaml(text, source="routing.yaml")
    assert config.queues == {}
    assert config.default_queue == DefaultQueue()
    assert config.source == "routing.yaml"


def test_load_routing_from_file(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING_EXAMPLE)
    assert load_routing(path) == load_routing_file(str(path))
    assert load_routing(None) == RoutingConfig.legacy()
    assert load_routing("") == RoutingConfig.legacy()


def test_missing_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(RoutingConfigError, match=r"nope\.yaml: routing file not found"):
        load_routing(tmp_path / "nope.yaml")


def test_file_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("queues:\n  default:\n    priority_range: [5, 2]\n")
    with pytest.raises(RoutingConfigError) as info:
        load_routing_file(path)
    assert str(info.value) == (f"{path}:3: queues.default.priority_range: min 5 is greater than max 2")


# --- every bad input names file, line and key -----------------------------------------------

Q = "default_queue: primary\nqueues:\n  primary: {}\n"  # 3 lines: a valid topology
ROUTE_Q = Q + "routes:\n  - match: {task: a.*}\n"

BAD = [
    ("queus:\n  x: {}\n", 1, "queus", "did you mean 'queues'?"),
    (
        "queues:\n  primary:\n    priorty_range: [0, 5]\n",
        3,
        "queues.primary.priorty_range",
        "did you mean 'priority_range'?",
    ),
    ("queues:\n  - primary\n", 1, "queues", "expected a mapping of names"),
    ("queues:\n  primary: [1, 2]\n", 2, "queues.primary", "expected a mapping"),
    ("queues:\n  primary:\n    exchange: 5\n", 3, "queues.primary.exchange", "must be a string"),
    (
        "default_queue:\n  queue: primary\n  fallbacks: primary\n" + "queues:\n  primary: {}\n",
        3,
        "default_queue.fallbacks",
        "expected a list",
    ),
    (
        "default_queue:\n  fallbacks:\n    - 3\n",
        3,
        "default_queue.fallbacks[0]",
        "must be a string",
    ),
    ("default_queue:\n  alais: x\n", 2, "default_queue.alais", "did you mean 'alias'?"),
    (
        "queues:\n  primary:\n    priority_range: [0, high]\n",
        3,
        "queues.primary.priority_range[1]",
        "must be an integer",
    ),
    (
        "queues:\n  primary:\n    priority_range: [0, 1, 2]\n",
        3,
        "queues.primary.priority_range",
        "exactly 2 integers",
    ),
    (
        "queues:\n  primary:\n    priority_range: low\n",
        3,
        "queues.primary.priority_range",
        "expected [min, max]",
    ),
    (
        "queues:\n  primary:\n    priority_range:\n      min: 5\n      max: 2\n",
        3,
        "queues.primary.priority_range",
        "min 5 is greater than max 2",
    ),
    (
        "queues:\n  primary:\n    priority_range:\n      min: 0\n      max: 300\n",
        5,
        "queues.primary.priority_range.max",
        "priority 300 is outside 0..255",
    ),
    (
        "queues:\n  primary:\n    priority_range: [-1, 5]\n",
        3,
        "queues.primary.priority_range[0]",
        "priority -1 is outside 0..255",
    ),
    (
        "queues:\n  primary:\n    priority_range: [true, 5]\n",
        3,
        "queues.primary.priority_range[0]",
        "a boolean",
    ),
    (
        "queues:\n  primary:\n    priority_range: {min: 1, maximum: 2}\n",
        3,
        "queues.primary.priority_range.maximum",
        "did you mean 'max'?",
    ),
    (
        ROUTE_Q + "    target: {type: queue, name: missing}\n",
        6,
        "routes[0].target.name",
        "queue 'missing' is not defined in queues; known: 'primary'",
    ),
    (
        ROUTE_Q + "    target:\n      type: broadcast\n      name: ctl\n",
        8,
        "routes[0].target.name",
        "broadcast 'ctl' is not defined",
    ),
    (
        ROUTE_Q + "    target:\n      type: topic\n      name: primary\n",
        7,
        "routes[0].target.type",
        "must be one of 'broadcast', 'queue'",
    ),
    (ROUTE_Q + "    target: {type: queue}\n", 6, "routes[0].target", "needs a 'name'"),
    (Q + "routes:\n  - target: {name: primary}\n", 5, "routes[0]", "needs a 'match'"),
    (Q + "routes:\n  - match: {task: a.*}\n", 5, "routes[0]", "needs a 'target'"),
    (
        Q + "routes:\n  - match: {}\n    target: {name: primary}\n",
        5,
        "routes[0].match",
        "needs 'task' and/or 'headers'",
    ),
    (
        Q + "routes:\n  - match:\n      tasks: a.*\n    target: {name: primary}\n",
        6,
        "routes[0].match.tasks",
        "did you mean 'task'?",
    ),
    (
        Q + "routes:\n  - match:\n      headers:\n        tenant: 1\n    target: {name: primary}\n",
        7,
        "routes[0].match.headers.tenant",
        "must be a string",
    ),
    (
        ROUTE_Q + "    target: {name: primary}\n    priority: 256\n",
        7,
        "routes[0].priority",
        "priority 256 is outside 0..255",
    ),
    (
        ROUTE_Q + "    target: {name: primary}\n    priority: high\n",
        7,
        "routes[0].priority",
        "must be an integer",
    ),
    (Q + "routes:\n  match: {task: a.*}\n", 4, "routes", "expected a list"),
    (
        "broadcasts:\n  control:\n    delivery: exactly-once\n",
        3,
        "broadcasts.control.delivery",
        "must be one of 'at-least-once', 'at-most-once'",
    ),
    (
        "broadcasts:\n  control:\n    durable: true\n",
        3,
        "broadcasts.control.durable",
        "did you mean 'durability'?",
    ),
    (
        "default_queue:\n  queue: nope\n" + "queues:\n  primary: {}\n",
        2,
        "default_queue.queue",
        "queue 'nope' is not defined",
    ),
    (
        "default_queue:\n  queue: primary\n  fallbacks: [primary, extra]\nqueues:\n  primary: {}\n",
        3,
        "default_queue.fallbacks[1]",
        "queue 'extra' is not defined",
    ),
    ("queues:\n  primary: {}\n", 1, "default_queue.queue", "queue 'default' is not defined"),
    ('default_queue:\n  alias: ""\n', 2, "default_queue.alias", "must be a non-empty string"),
    (f"queues:\n  {'q' * 300}: {{}}\n", 1, "queues", "is 300 characters long; the limit is 255"),
    ('queues:\n  "q\\0": {}\n', 1, "queues", "name 'q\\x00' holds a NUL character"),
    ("broadcasts:\n  control:\n    delivery: ''\n", 3, "broadcasts.control.delivery", "got ''"),
    (
        "default_queue:\n  alias: secondary\n  queue: primary\nqueues:\n  primary: {}\n  secondary: {}\n",
        2,
        "default_queue.alias",
        "also the name of another queue",
    ),
]


@pytest.mark.parametrize(("text", "line", "key", "reason"), BAD)
def test_bad_input_names_file_line_and_key(text: str, line: int, key: str, reason: str) -> None:
    message = load_error(text)
    assert message.startswith(f"routing.yaml:{line}: {key}: "), message
    assert reason in message


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('queues: !!python/object/apply:os.system ["echo hi"]\n', 1, "!!python/object/apply"),
        ("queues:\n  primary:\n    exchange: !!python/name:os.system\n", 3, "unsupported"),
        ("queues:\n  primary: !env FOO\n", 2, "unsupported YAML tag '!env'"),
        ("queues:\n  primary: {\n", 3, "invalid YAML"),
        ("queues:\n\tprimary: {}\n", 2, "invalid YAML"),
        ("- a\n- b\n", 1, "expected a mapping"),
        ("queues:\n  p: {}\n  p: {}\n", 3, "duplicate key 'p' (first at line 2)"),
        ("queues:\n  yes: {}\n", 2, "quote it"),
        ("base: &b {exchange: x}\nqueues:\n  p:\n    <<: *b\n", 4, "merge keys"),
        ("a: &x [*x]\n", 1, "recursive alias"),
        ("--- {}\n--- {}\n", 2, "invalid YAML"),
    ],
)
def test_unsafe_or_malformed_yaml_is_refused(text: str, line: int, reason: str) -> None:
    message = load_error(text)
    assert message.startswith(f"routing.yaml:{line}: "), message
    assert reason in message


def test_python_tag_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(RoutingConfigError):
        load_routing_yaml(f'x: !!python/object/apply:os.system ["touch {marker}"]\n')
    assert not marker.exists()


def test_absurd_nesting_is_a_config_error() -> None:
    message = load_error("queues: " + "[" * 5000 + "]" * 5000 + "\n")
    assert message.startswith("routing.yaml:")


def test_string_source_defaults_to_placeholder() -> None:
    with pytest.raises(RoutingConfigError, match=r"^<string>:1: queus: unknown key"):
        load_routing_yaml("queus: {}\n")


# --- subscriptions ---------------------------------------------------------------------------


def test_subscription_defaults_to_default_queue(registry: RoutingRegistry) -> None:
    assert RoutingSubscription.build(registry) == RoutingSubscription(("primary",), ())


def test_subscription_resolves_alias_and_dedupes(registry: RoutingRegistry) -> None:
    built = RoutingSubscription.build(
        registry, queues=["default", "secondary", "primary"], broadcasts=["control", "control"]
    )
    assert built == RoutingSubscription(("primary", "secondary"), ("control",))
    assert RoutingSubscription.build(registry, queues="secondary").queues == ("secondary",)


def test_subscription_rejects_unknown_names(registry: RoutingRegistry) -> None:
    with pytest.raises(RoutingConfigError, match="unknown queue 'ghost'"):
        RoutingSubscription.build(registry, queues=["ghost"])
    with pytest.raises(RoutingConfigError, match="unknown broadcast 'ghost'"):
        RoutingSubscription.build(registry, broadcasts=["ghost"])


def test_legacy_subscription_accepts_any_queue() -> None:
    built = RoutingSubscription.build(RoutingRegistry(), queues=["emails"])
    assert built.queues == ("emails",)


# --- layering ----------------------------------------------------------------------------------


def test_core_routing_does_not_import_yaml() -> None:
    code = "import sys, stem_pg.core.routing; assert 'yaml' not in sys.modules"
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
