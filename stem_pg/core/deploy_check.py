"""``stem tasks check``: which waiting work a new release of an application could not run.

Before a deploy, every job waiting in the queues (due or scheduled), every beat schedule,
every canvas member planned for later and every unfinished workflow run must name a task
(or workflow) the new release registers, with argument names its handler still binds. The
database side counts the waiting work by task and argument names (the values never matter
to a binding); this module judges each group against the new application.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from stem_pg.core.tasks import TaskRegistry
from stem_pg.core.workflows import WorkflowDefinition

#: Where waiting work comes from, in the order a report lists them.
SOURCES = ("queued", "scheduled", "schedule", "canvas", "workflow")


@dataclass(frozen=True)
class WaitingGroup:
    """``waiting`` items of one ``source`` naming ``task`` with argument ``names`` (a canvas
    member also gets the previous result as ``result_arg``)."""

    source: str
    task: str
    names: list[str]
    result_arg: str | None
    waiting: int


@dataclass
class Problem:
    """Work waiting for ``task`` that the application would not run, and why."""

    task: str
    problem: str
    counts: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        where = ", ".join(f"{self.counts[s]} {s}" for s in SOURCES if s in self.counts)
        return f"{self.task}: {self.problem} ({where})"


def find_problems(
    groups: Iterable[WaitingGroup], registry: TaskRegistry, workflows: Mapping[str, WorkflowDefinition]
) -> list[Problem]:
    """One Problem per (task, reason), counting the waiting work of each source, by task name."""
    found: dict[tuple[str, str], Problem] = {}
    for group in groups:
        reason = (
            _workflow_problem(group, workflows)
            if group.source == "workflow"
            else _task_problem(group, registry)
        )
        if reason is None:
            continue
        problem = found.setdefault((group.task, reason), Problem(group.task, reason))
        problem.counts[group.source] = problem.counts.get(group.source, 0) + group.waiting
    return sorted(found.values(), key=lambda p: (p.task, p.problem))


def _task_problem(group: WaitingGroup, registry: TaskRegistry) -> str | None:
    definition = registry.get(group.task)
    if definition is None:
        close = registry.close_match(group.task)
        return "task not registered" + (f"; did you mean {close!r}?" if close else "")
    names = [*group.names, *([group.result_arg] if group.result_arg else [])]
    problem = definition.kwargs_problem(dict.fromkeys(names))
    if problem is None:
        return None
    prefix = f"task {group.task!r}: "
    return "arguments do not fit: " + problem.removeprefix(prefix)


def _workflow_problem(group: WaitingGroup, workflows: Mapping[str, WorkflowDefinition]) -> str | None:
    definition = workflows.get(group.task)
    if definition is None:
        return "workflow not registered"
    try:  # a workflow takes (ctx, **params)
        inspect.signature(definition.fn).bind(None, **dict.fromkeys(group.names))
    except TypeError as exc:
        return f"params do not fit: {exc}"
    return None
