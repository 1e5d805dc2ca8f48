"""``@app.task`` and ``@app.workflow``: register a handler and return its typed ``Task``.

A ``Task[P, R]`` stays callable as the function (``__call__`` runs it here, as Celery's)
and enqueues it with arguments checked against the handler's parameters (``P``, the
context parameter left out when it comes first) by mypy and pyright, and by the planner
at run time. The registry keeps the plain function: what a worker runs is unchanged.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from stem_pg.core.canvas import Signature
from stem_pg.core.planning import Expires
from stem_pg.core.tasks import TaskDefinition, make_options

if TYPE_CHECKING:
    from stem_pg.client.results import TaskResult
    from stem_pg.client.workflows import WorkflowDefinition, WorkflowRun
    from stem_pg.core.planning import Planner
    from stem_pg.core.tasks import TaskRegistry

__all__ = ["AsyncTask", "SyncTask", "Task", "TaskCall", "TaskDecorator", "Workflow", "WorkflowDecorator"]

P = ParamSpec("P")
R = TypeVar("R")


class _ContextLike(Protocol):
    """What only a TaskContext has (the worker's class; the client may not import it): a
    handler whose first parameter has this shape takes the context there."""

    @property
    def lease_token(self) -> str: ...

    def extend_lease(self, seconds: float) -> None: ...


Ctx = TypeVar("Ctx", bound=_ContextLike)


class TaskApp(Protocol):
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


class Task(Generic[P, R]):
    """A registered task: ``enqueue`` / ``delay`` / ``aenqueue`` / ``s`` / ``options``.

    ``P`` are the arguments a caller gives, ``R`` what ``TaskResult.get()`` returns.
    Calling the task runs the handler here, in this process, as a plain call.
    """

    # Copied from the handler (functools.update_wrapper), as a decorated function has them.
    __name__: str
    __qualname__: str
    __wrapped__: Callable[..., Any]

    def __init__(self, app: TaskApp, definition: TaskDefinition) -> None:
        functools.update_wrapper(self, definition.fn)
        self.app = app
        self.definition = definition
        self.fn = definition.fn
        self.name = self.task_name = definition.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskResult[R]:
        """Enqueue a job of this task (positionals are named after the handler's parameters:
        jobs carry keyword arguments only); raises BadArgumentsError if they do not fit."""
        return self.app.enqueue(self.name, self.definition.as_kwargs(args, kwargs))

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> TaskResult[R]:
        """As Celery's: the same as ``enqueue``."""
        return self.app.enqueue(self.name, self.definition.as_kwargs(args, kwargs))

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskResult[R]:
        """The async twin of ``enqueue``."""
        return await self.app.aenqueue(self.name, self.definition.as_kwargs(args, kwargs))

    def s(self, **kwargs: Any) -> Signature:
        """A call to make later in a canvas (not checked by type checkers: a link may leave out
        the argument its previous link's result fills); options through ``.set(...)``."""
        return Signature(self.name, kwargs, app=self.app)

    def si(self, **kwargs: Any) -> Signature:
        """An immutable signature: it takes no result from the previous link."""
        return Signature(self.name, kwargs, immutable=True, app=self.app)

    def options(
        self,
        *,
        task_id: str | None = None,
        countdown: float | timedelta | None = None,
        eta: datetime | None = None,
        expires: Expires = None,
        priority: int | None = None,
        queue: str | None = None,
        headers: Mapping[str, Any] | None = None,
        connection: Any = None,
        debounce: float | timedelta | str | None = None,
        key: str | None = None,
    ) -> TaskCall[P, R]:
        """This task with enqueue options, as ``app.enqueue`` takes them:
        ``send_email.options(countdown=30, queue="mail").enqueue(to=..., subject=...)``."""
        given = {
            "task_id": task_id, "countdown": countdown, "eta": eta, "expires": expires,
            "priority": priority, "queue": queue, "headers": headers, "connection": connection,
            "debounce": debounce, "key": key,
        }  # fmt: skip
        return TaskCall(self, {k: v for k, v in given.items() if v is not None})


class SyncTask(Task[P, R]):
    """A task of a ``def`` handler that takes no context: calling it returns ``R``."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = self.fn(*args, **kwargs)
        return result


class AsyncTask(Task[P, R]):
    """A task of an ``async def`` handler that takes no context: calling it returns a coroutine."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        coroutine: Coroutine[Any, Any, R] = self.fn(*args, **kwargs)
        return coroutine


class TaskCall(Generic[P, R]):
    """A task with enqueue options (``task.options(...)``): the same calls, with those options."""

    def __init__(self, task: Task[P, R], options: Mapping[str, Any]) -> None:
        self.task = task
        self.enqueue_options = dict(options)

    def __repr__(self) -> str:
        return f"<TaskCall {self.task.name} {self.enqueue_options}>"

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskResult[R]:
        task = self.task
        return task.app.enqueue(task.name, task.definition.as_kwargs(args, kwargs), **self.enqueue_options)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> TaskResult[R]:
        task = self.task
        return task.app.enqueue(task.name, task.definition.as_kwargs(args, kwargs), **self.enqueue_options)

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskResult[R]:
        """Async; ``debounce`` and ``key`` are for ``enqueue`` only (a TypeError here)."""
        task = self.task
        kwargs_ = task.definition.as_kwargs(args, kwargs)
        return await task.app.aenqueue(task.name, kwargs_, **self.enqueue_options)

    def s(self, **kwargs: Any) -> Signature:
        """A signature with these options (``connection``, ``debounce``, ``key`` are not
        signature options: a TaskError)."""
        return self.task.s(**kwargs).set(**self.enqueue_options)


class TaskDecorator:
    """``app.task``: register a ``def`` or ``async def`` handler; options as in TaskOptions.

    ``@app.task`` or ``@app.task(name=..., queue=..., max_retries=...)`` returns a ``Task``.
    An unknown option is a BadArgumentsError (a TypeError).
    """

    def __init__(
        self, app: TaskApp, name: str | None = None, options: Mapping[str, Any] | None = None
    ) -> None:
        self.app = app
        self.name = name
        self.options = dict(options or {})

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[Concatenate[Ctx, P], Coroutine[Any, Any, R]], /
    ) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[Ctx, P], R], /) -> Task[P, R]: ...
    # A context, then ``**kwargs``: mypy cannot split it into a ParamSpec (ctx= could hide in
    # the ``**``), so the arguments go unchecked; the result type is still known.
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[Concatenate[Ctx, ...], Coroutine[Any, Any, R]], /
    ) -> Task[..., R]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[Ctx, ...], R], /) -> Task[..., R]: ...
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[P, Coroutine[Any, Any, R]], /
    ) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> SyncTask[P, R]: ...
    @overload
    def __call__(self, fn: None = None, /, *, name: str | None = None, **options: Any) -> TaskDecorator: ...

    def __call__(
        self, fn: Callable[..., Any] | None = None, /, *, name: str | None = None, **options: Any
    ) -> Any:
        if fn is None:
            return TaskDecorator(self.app, name or self.name, {**self.options, **options})
        return register_task(self.app, fn, name or self.name, {**self.options, **options})


def register_task(app: TaskApp, fn: Callable[..., Any], name: str | None, options: Mapping[str, Any]) -> Any:
    """Register ``fn`` (a Task's own function when given a Task) and return its Task."""
    fn = fn.fn if isinstance(fn, Task) else fn
    task_options = make_options(f"@app.task on {fn.__qualname__}", options)
    task_name = name or f"{fn.__module__}.{fn.__qualname__}"
    definition = app.registry.register(TaskDefinition.build(task_name, fn, task_options))
    app.planner.forget()
    return (AsyncTask if definition.is_async else SyncTask)(app, definition)


class Workflow(Generic[P, R]):
    """A registered workflow: ``start(**params) -> WorkflowRun[R]``; calling it runs the function."""

    def __init__(self, app: TaskApp, name: str, fn: Callable[..., Any]) -> None:
        functools.update_wrapper(self, fn)
        self.app = app
        self.fn = fn
        self.name = self.workflow_name = name

    def __repr__(self) -> str:
        return f"<Workflow {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def start(self, *args: P.args, **kwargs: P.kwargs) -> WorkflowRun[R]:
        """Start a run (``app.start_workflow(name, params)``; positionals are named after the
        parameters that follow the context)."""
        return self.app.start_workflow(self.name, self._params(args, kwargs))

    def start_with(self, *, run_id: str | None = None, connection: Any = None) -> Callable[P, WorkflowRun[R]]:
        """``start`` with a ``run_id`` (idempotent) or in the caller's transaction (``connection``)."""

        def start(*args: P.args, **kwargs: P.kwargs) -> WorkflowRun[R]:
            params = self._params(args, kwargs)
            return self.app.start_workflow(self.name, params, run_id=run_id, connection=connection)

        return start

    def _params(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        if not args:
            return dict(kwargs)
        from stem_pg.core.errors import BadArgumentsError

        signature = inspect.signature(self.fn)
        after_ctx = signature.replace(parameters=list(signature.parameters.values())[1:])
        try:
            return dict(after_ctx.bind_partial(*args, **kwargs).arguments)
        except TypeError as exc:
            raise BadArgumentsError(f"workflow {self.name!r}: {exc}") from None


class WorkflowDecorator:
    """``app.workflow``: register an ``async def`` workflow taking ``(ctx: WorkflowContext, **params)``.

    ``max_run_time`` cancels a run that has not ended that long after it started,
    ``max_suspended_time`` one suspended that long at a time (seconds, timedelta or
    ``"5m"``). Other options (``queue``, ``priority``, ``max_retries``, ...) are the
    task options of the jobs that run it. Returns a ``Workflow`` (``.start(**params)``).
    The app records the definition and those options; a worker binds the handler
    that replays runs (``stem_pg.worker.workflows``).
    """

    def __init__(
        self, app: TaskApp, name: str | None = None, options: Mapping[str, Any] | None = None
    ) -> None:
        self.app = app
        self.name = name
        self.options = dict(options or {})

    @overload
    def __call__(self, fn: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]], /) -> Workflow[P, R]: ...
    @overload  # ``(ctx, **params)``: see TaskDecorator
    # mypy says it cannot match, yet it is what a ``(ctx: Any, **params: Any)`` workflow matches
    def __call__(  # type: ignore[overload-cannot-match]
        self, fn: Callable[Concatenate[Any, ...], Coroutine[Any, Any, R]], /
    ) -> Workflow[..., R]: ...
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
    ) -> WorkflowDecorator: ...

    def __call__(
        self, fn: Callable[..., Any] | None = None, /, *, name: str | None = None, **options: Any
    ) -> Any:
        if fn is None:
            return WorkflowDecorator(self.app, name or self.name, {**self.options, **options})
        return register_workflow(self.app, fn, name or self.name, {**self.options, **options})


def register_workflow(app: TaskApp, fn: Callable[..., Any], name: str | None, options: dict[str, Any]) -> Any:
    from stem_pg.client.workflows import workflow_task
    from stem_pg.core.workflows import WorkflowOptions, build_definition, seconds

    fn = fn.fn if isinstance(fn, Workflow) else fn
    wf_name = name or f"{fn.__module__}.{fn.__qualname__}"
    max_run_time = options.pop("max_run_time", None)
    max_suspended_time = options.pop("max_suspended_time", None)
    limits = WorkflowOptions(
        seconds(max_run_time, what=f"workflow {wf_name!r}: max_run_time"),
        seconds(max_suspended_time, what=f"workflow {wf_name!r}: max_suspended_time"),
    )
    definition = build_definition(wf_name, fn, limits)
    register_task(app, workflow_task(definition), wf_name, options)
    app.workflows[wf_name] = definition
    return Workflow(app, wf_name, fn)
