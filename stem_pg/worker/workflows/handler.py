"""The task handler that replays a workflow run, and the registry a worker runs with, in
which each workflow's task is that handler.

The client records a workflow as a definition plus a stand-in task that carries
the task options of its jobs (``stem_pg.client.workflows.workflow_task``); the
worker binds the real handler here, so the client never imports the worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from stem_pg.client.backend import Backend
from stem_pg.core.planning import Planner
from stem_pg.core.signals import WorkflowInfo
from stem_pg.core.tasks import TaskDefinition, TaskRegistry
from stem_pg.core.workflows import WorkflowDefinition
from stem_pg.worker.context import TaskContext
from stem_pg.worker.workflows.context import WorkflowContext
from stem_pg.worker.workflows.runner import RunJob, RunStopped, Suspended

Workflows = Mapping[str, WorkflowDefinition]


def workflow_handler(
    backend: Backend, planner: Planner, workflows: Workflows, definition: WorkflowDefinition
) -> Callable[..., Any]:
    """The handler of the jobs of ``definition``: each runs the function from the top
    against the run's ledger, until it ends or suspends."""

    async def run_workflow(run_id: str, ctx: TaskContext) -> Any:
        job = RunJob(backend, planner, workflows, definition, run_id, ctx)
        started = await job.start()
        if started is None:
            return None
        run, ledger = started
        signals = backend.signals
        begun = signals.workflow_resumed if run.resumes else signals.workflow_started
        info = WorkflowInfo(run.workflow, run.id, ctx.task_id, run.resumes, run.params)
        if begun:
            await begun.asend(info)
        try:
            result = await definition.fn(WorkflowContext(job, run, ledger), **run.params)
        except Suspended:
            if signals.workflow_suspended:
                await signals.workflow_suspended.asend(info)
            return None
        except RunStopped:
            return None
        if signals.workflow_ended:
            await signals.workflow_ended.asend(replace(info, result=result))
        return result

    run_workflow.__qualname__ = f"workflow:{definition.name}"
    return run_workflow


class WorkflowTasks(TaskRegistry):
    """An application's task registry as a worker runs it: a workflow's task is the handler
    that replays its runs, with the task options it was registered with.

    A live view, like the registry itself: tasks and workflows registered later are seen.
    """

    def __init__(self, tasks: TaskRegistry, workflows: Workflows, backend: Backend, planner: Planner) -> None:
        super().__init__()
        self.tasks = tasks
        self.workflows = workflows
        self.backend = backend
        self.planner = planner
        self._bound: dict[str, tuple[TaskDefinition, WorkflowDefinition, TaskDefinition]] = {}

    def get(self, name: str) -> TaskDefinition | None:
        task = self.tasks.get(name)
        workflow = self.workflows.get(name) if task is not None else None
        if task is None or workflow is None:
            return task
        bound = self._bound.get(name)
        if bound is None or bound[0] is not task or bound[1] is not workflow:
            handler = workflow_handler(self.backend, self.planner, self.workflows, workflow)
            bound = (task, workflow, replace(task, fn=handler))
            self._bound[name] = bound
        return bound[2]

    def register(self, definition: TaskDefinition) -> TaskDefinition:
        return self.tasks.register(definition)

    def __getitem__(self, name: str) -> TaskDefinition:
        found = self.get(name)
        return self.tasks[name] if found is None else found  # the former raises UnknownTaskError

    def __contains__(self, name: object) -> bool:
        return name in self.tasks

    def __iter__(self) -> Iterator[TaskDefinition]:
        for task in self.tasks:
            yield self.get(task.name) or task

    def __len__(self) -> int:
        return len(self.tasks)
