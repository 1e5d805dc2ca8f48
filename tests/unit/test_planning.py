"""Planning without a database: the Planner behind ``app.plan`` and the broadcast routes."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

import stem_pg
import stem_pg.client
from stem_pg.client.app import EnqueueRequest as FromApp
from stem_pg.config.routing_file import load_routing_yaml
from stem_pg.core.errors import TaskError
from stem_pg.core.planning import EnqueueRequest, Planner
from stem_pg.core.routing import RoutingConfig
from stem_pg.core.routing_registry import RoutingRegistry
from stem_pg.core.tasks import TaskDefinition, TaskOptions, TaskRegistry
from stem_pg.db.listen import mentions

ROUTING = """
queues:
  default: {}
  fast: {}
routes:
  - match: {task: "note.*"}
    target: {type: broadcast, name: notes}
broadcasts:
  notes: {}
"""


def _planner(registry: TaskRegistry | None = None) -> Planner:
    return Planner(
        registry or TaskRegistry(), RoutingRegistry(RoutingConfig.legacy("default")), default_max_retries=3
    )


def test_enqueue_request_has_one_home() -> None:
    assert stem_pg.EnqueueRequest is EnqueueRequest is FromApp


def test_plan_resolves_the_route_and_options() -> None:
    registry = TaskRegistry()
    registry.register(TaskDefinition.build("t", lambda x: None, TaskOptions(max_retries=7, priority=5)))
    spec = _planner(registry).plan(EnqueueRequest("t", {"x": 1}))
    assert (spec.task, spec.queue, spec.priority, spec.max_retries) == ("t", "default", 5, 7)
    assert spec.args == '{"x":1}'


def test_plan_rejects_bad_requests_before_any_sql() -> None:
    planner = _planner()
    with pytest.raises(TaskError, match="priority must be an integer"):
        planner.plan(EnqueueRequest("t", priority="high"))  # type: ignore[arg-type]
    with pytest.raises(TaskError, match="either eta or countdown"):
        planner.plan(EnqueueRequest("t", countdown=1, eta=datetime.now(UTC)))


def test_a_new_registry_forgets_the_cached_placements() -> None:
    planner = _planner()
    assert planner.plan(EnqueueRequest("t")).max_retries == 3
    registry = TaskRegistry()
    registry.register(TaskDefinition.build("t", lambda: None, TaskOptions(max_retries=9)))
    planner.registry = registry
    assert planner.plan(EnqueueRequest("t")).max_retries == 9


def test_broadcast_routes_are_planned_as_messages() -> None:
    planner = Planner(TaskRegistry(), RoutingRegistry(load_routing_yaml(ROUTING)), default_max_retries=3)
    requests = [EnqueueRequest("job"), EnqueueRequest("note.hello", {"a": 1}), EnqueueRequest("job")]
    routed = planner.plan_routed(requests)
    assert list(routed) == [1]
    assert routed[1].channel == "notes" and routed[1].task == "note.hello"
    with pytest.raises(TaskError, match="broadcast channel"):
        planner.plan(requests[1])


def test_a_notification_mentions_a_key_by_name_or_star() -> None:
    assert mentions("a,k,b", "k") and mentions("*", "k") and mentions("k", "k")
    assert not mentions("kk,a", "k") and not mentions("", "k")


CLIENT = Path(stem_pg.client.__file__).parent
FEATURES = ("backend", "enqueue", "waker", "results", "broadcasts", "canvas", "locks", "schedules", "control")


@pytest.mark.parametrize("name", FEATURES)
def test_client_features_never_import_the_facade(name: str) -> None:
    """Features receive a Backend (and the Planner); only app.py composes them (lazy and
    TYPE_CHECKING imports count: the module's whole syntax tree is searched)."""
    tree = ast.parse((CLIENT / f"{name}.py").read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    assert "stem_pg.client.app" not in imported
    assert not any(
        isinstance(node, ast.ImportFrom)
        and node.module == "stem_pg.client"
        and "app" in {a.name for a in node.names}
        for node in ast.walk(tree)
    )
