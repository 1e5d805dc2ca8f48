"""``@app.task`` and ``@app.workflow``: register a handler and give it its enqueue calls."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

from stem_pg.core.canvas import Signature
from stem_pg.core.tasks import TaskDefinition, make_options

if TYPE_CHECKING:
    from stem_pg.client.results import TaskResult
    from stem_pg.client.workflows import WorkflowDefinition, WorkflowRun
    from stem_pg.core.planning import Planner
    from stem_pg.core.tasks import TaskRegistry

__all__ = ["TaskDecorator", "WorkflowDecorator"]

F = TypeVar("F", bound=Callable[..., Any])


class Stem(Protocol):
    """What a task needs of its app (``stem_pg.client.app.Stem``, which imports this module)."""

    planner: Planner
    workflows: dict[str, WorkflowDefinition]

    @property
    def registry(self) -> TaskRegistry: ...

    @property
    def enqueue(self) -> Callable[..., TaskResult]: ...

    @property
    def aenqueue(self) -> Callable[..., Awaitable[TaskResult]]: ...

    @property
    def start_workflow(self) -> Callable[..., WorkflowRun]: ...

    @property
    def task(self) -> TaskDecorator: ...


class TaskDecorator:
    """``app.task``: register a ``def`` or ``async def`` handler; options as in TaskOptions.

    The function stays callable as before and gains ``.enqueue(**kwargs)``,
    ``.delay(*args, **kwargs)`` (positionals named after its parameters), ``.aenqueue``
    and ``.task_name``. An unknown option is a BadArgumentsError (a TypeError).
    """

    def __init__(self, app: Stem) -> None:
        self.app = app

    @overload
    def __call__(self, fn: F, /) -> F: ...
    @overload
    def __call__(
        self, fn: None = None, /, *, name: str | None = None, **options: Any
    ) -> Callable[[F], F]: ...

    def __call__(self, fn: F | None = None, /, *, name: str | None = None, **options: Any) -> Any:
        app = self.app

        def register(func: F) -> F:
            task_options = make_options(f"@app.task on {func.__qualname__}", options)
            task_name = name or f"{func.__module__}.{func.__qualname__}"
            app.registry.register(TaskDefinition.build(task_name, func, task_options))
            app.planner.forget()
            func.task_name = task_name  # type: ignore[attr-defined]
            func.enqueue = functools.partial(_enqueue_kwargs, app, task_name)  # type: ignore[attr-defined]
            func.delay = functools.partial(_delay, app, task_name)  # type: ignore[attr-defined]
            func.aenqueue = functools.partial(_aenqueue_kwargs, app, task_name)  # type: ignore[attr-defined]
            func.s = functools.partial(_signature, app, task_name)  # type: ignore[attr-defined]
            func.si = functools.partial(_immutable_signature, app, task_name)  # type: ignore[attr-defined]
            return func

        return register(fn) if fn is not None else register


class WorkflowDecorator:
    """``app.workflow``: register an ``async def`` workflow taking ``(ctx: WorkflowContext, **params)``.

    ``max_run_time`` cancels a run that has not ended that long after it started,
    ``max_suspended_time`` one suspended that long at a time (seconds, timedelta or
    ``"5m"``). Other options (``queue``, ``priority``, ``max_retries``, ...) are the
    task options of the jobs that run it. The function gains ``.start(**params)``.
    The app records the definition and those options; a worker binds the handler
    that replays runs (``stem_pg.worker.workflows``).
    """

    def __init__(self, app: Stem) -> None:
        self.app = app

    @overload
    def __call__(self, fn: F, /) -> F: ...
    @overload
    def __call__(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        max_run_time: float | timedelta | str | None = None,
        max_suspended_time: float | timedelta | str | None = None,
        **options: Any,
    ) -> Callable[[F], F]: ...

    def __call__(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        max_run_time: float | timedelta | str | None = None,
        max_suspended_time: float | timedelta | str | None = None,
        **options: Any,
    ) -> Any:
        from stem_pg.client.workflows import workflow_task
        from stem_pg.core.workflows import WorkflowOptions, build_definition, seconds

        app = self.app

        def register(func: F) -> F:
            wf_name = name or f"{func.__module__}.{func.__qualname__}"
            limits = WorkflowOptions(
                seconds(max_run_time, what=f"workflow {wf_name!r}: max_run_time"),
                seconds(max_suspended_time, what=f"workflow {wf_name!r}: max_suspended_time"),
            )
            definition = build_definition(wf_name, func, limits)
            app.task(name=wf_name, **options)(workflow_task(definition))
            app.workflows[wf_name] = definition
            func.workflow_name = wf_name  # type: ignore[attr-defined]
            func.start = functools.partial(_start_kwargs, app, wf_name)  # type: ignore[attr-defined]
            return func

        return register(fn) if fn is not None else register


def _start_kwargs(app: Stem, workflow_name: str, /, **params: Any) -> WorkflowRun:
    return app.start_workflow(workflow_name, params)


def _enqueue_kwargs(app: Stem, task_name: str, /, **kwargs: Any) -> TaskResult:
    return app.enqueue(task_name, kwargs)


def _delay(app: Stem, task_name: str, /, *args: Any, **kwargs: Any) -> TaskResult:
    return app.enqueue(task_name, app.registry[task_name].as_kwargs(args, kwargs))


async def _aenqueue_kwargs(app: Stem, task_name: str, /, **kwargs: Any) -> TaskResult:
    return await app.aenqueue(task_name, kwargs)


def _signature(app: Stem, name: str, /, **kwargs: Any) -> Signature:
    return Signature(name, kwargs, app=app)


def _immutable_signature(app: Stem, name: str, /, **kwargs: Any) -> Signature:
    return Signature(name, kwargs, immutable=True, app=app)
