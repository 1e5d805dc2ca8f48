"""Task definitions and the registry that names them."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from stem_pg.core.envelope import check_name
from stem_pg.core.errors import BadArgumentsError, TaskError, UnknownTaskError
from stem_pg.core.limits import LimitError, Limits, declared_limits
from stem_pg.core.models import ModelArguments
from stem_pg.core.retry import DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX, RetryPolicy


class Retry(Exception):
    """Raised (usually via ``ctx.retry()``) to run the task again later."""

    def __init__(self, countdown: float | None = None, exc: BaseException | None = None) -> None:
        super().__init__(f"retry requested ({exc!r})" if exc else "retry requested")
        self.countdown = countdown
        self.exc = exc


class Reject(Exception):
    """Raised to fail a task at once, without retries; it goes to the dead letters."""


@dataclass(frozen=True)
class TaskOptions:
    """The per-task settings of ``@app.task(...)``; None means "the app's default"."""

    queue: str | None = None
    priority: int | None = None
    max_retries: int | None = None
    retry_backoff: bool | float = True
    retry_backoff_max: float = DEFAULT_BACKOFF_MAX
    retry_jitter: bool = True
    autoretry_for: tuple[type[BaseException], ...] = (Exception,)
    #: Seconds an attempt may run. An async handler is cancelled; a sync handler's thread
    #: cannot be, so its worker process retires and is replaced (stem_pg.worker.recycle).
    time_limit: float | None = None
    #: Async handlers: cancelled at this limit too; sync ones: raised at their next checkpoint.
    soft_time_limit: float | None = None
    visibility_timeout: float | None = None
    acks_late: bool = True
    ignore_result: bool = False
    #: A duplicate enqueue (same task, queue and arguments) while a job is live
    #: returns that job's id instead of adding one.
    unique: bool = False
    #: Seconds (or a timedelta) after which a live duplicate no longer blocks; implies unique.
    unique_for: float | timedelta | None = None
    #: Starts of this task across the namespace, as a token bucket: "100/s", "10/m", "500/h".
    rate_limit: str | None = None
    #: A rate for each value of the argument (or header) ``group_rate_key`` names ("{tenant}").
    group_rate_limit: str | None = None
    group_rate_key: str | None = None
    #: Jobs of this task running at once across the namespace (for each value of
    #: ``concurrency_key``, when given; claims are then fair across the values).
    concurrency_limit: int | None = None
    concurrency_key: str | None = None
    #: When a limit's state cannot be read (its limiters row is gone): run the jobs
    #: unlimited (True, Stem's failOpen) or hold them until it is back (False, failClosed).
    limits_fail_open: bool = True

    @property
    def limits(self) -> Limits:
        """The rate and concurrency limits these options declare (a task's scope is its name,
        set by ``task_limits``)."""
        return declared_limits(
            "task:",
            rate_limit=self.rate_limit,
            group_rate_limit=self.group_rate_limit,
            group_rate_key=self.group_rate_key,
            concurrency_limit=self.concurrency_limit,
            concurrency_key=self.concurrency_key,
            limits_fail_open=self.limits_fail_open,
        )

    def __post_init__(self) -> None:
        try:
            self.limits  # noqa: B018 (checked here, so a bad limit fails at @app.task)
        except LimitError as exc:
            raise TaskError(str(exc)) from None
        for name in ("time_limit", "soft_time_limit", "visibility_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise TaskError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.max_retries is not None and self.max_retries < 0:
            raise TaskError(f"max_retries must be >= 0, got {self.max_retries}")
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in self.autoretry_for):
            raise TaskError(f"autoretry_for must hold exception classes, got {self.autoretry_for!r}")
        if not isinstance(self.unique, bool):
            raise TaskError(f"unique must be True or False, got {self.unique!r}")
        if self.unique_for is not None:
            seconds = (
                self.unique_for.total_seconds() if isinstance(self.unique_for, timedelta) else self.unique_for
            )
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
                raise TaskError(f"unique_for must be a positive number of seconds, got {self.unique_for!r}")
            object.__setattr__(self, "unique_for", float(seconds))
            object.__setattr__(self, "unique", True)

    def retry_policy(self, default_max_retries: int) -> RetryPolicy:
        backoff = self.retry_backoff
        base = DEFAULT_BACKOFF_BASE if backoff is True or backoff is False else float(backoff)
        return RetryPolicy(
            max_retries=default_max_retries if self.max_retries is None else self.max_retries,
            backoff=backoff is not False,
            base=base,
            maximum=self.retry_backoff_max,
            jitter=self.retry_jitter,
        )


@dataclass(frozen=True)
class TaskDefinition:
    """A registered handler: its name, function and options."""

    name: str
    fn: Callable[..., Any]
    options: TaskOptions = field(default_factory=TaskOptions)
    context_param: str | None = None

    @functools.cached_property
    def is_async(self) -> bool:
        """Whether the handler is a coroutine function (asked once, not once per job)."""
        return inspect.iscoroutinefunction(self.fn)

    @functools.cached_property
    def async_limit(self) -> float | None:
        """The seconds an async handler may run: the smaller of its time limits, if any."""
        limits = [x for x in (self.options.time_limit, self.options.soft_time_limit) if x is not None]
        return min(limits) if limits else None

    @classmethod
    def build(cls, name: str, fn: Callable[..., Any], options: TaskOptions) -> TaskDefinition:
        """Inspect ``fn``: a parameter annotated ``TaskContext`` (or named ``ctx``) gets the context."""
        check_name(name, what="task name")
        return cls(name, fn, options, _context_param(fn))

    @functools.cached_property
    def models(self) -> ModelArguments:
        """The parameters annotated with pydantic models (stem_pg.core.models), if any."""
        return ModelArguments.of(self.fn)

    @functools.cached_property
    def arguments(self) -> inspect.Signature:
        """The parameters a caller gives: the handler's, without the injected context."""
        signature = inspect.signature(self.fn)
        kept = [p for p in signature.parameters.values() if p.name != self.context_param]
        return signature.replace(parameters=kept)

    def check_kwargs(self, kwargs: Mapping[str, Any] | None, *, partial: bool = False) -> None:
        """Raise BadArgumentsError unless the handler takes ``kwargs`` (with ``partial``,
        missing ones are allowed: a canvas link gets the previous result later)."""
        problem = self.kwargs_problem(kwargs, partial=partial)
        if problem is not None:
            raise BadArgumentsError(problem)

    @functools.cached_property
    def callable_without_arguments(self) -> bool:
        """Whether every parameter a caller gives has a default (or collects the rest)."""
        try:
            self.arguments.bind()
        except TypeError:
            return False
        return True

    def kwargs_problem(self, kwargs: Mapping[str, Any] | None, *, partial: bool = False) -> str | None:
        """Why the handler cannot be called with ``kwargs`` (names the task), or None."""
        if not kwargs and (partial or self.callable_without_arguments):
            return None  # the worker asks before every job: most jobs carry no arguments
        given = dict(kwargs or {})
        try:
            (self.arguments.bind_partial if partial else self.arguments.bind)(**given)
        except TypeError as exc:
            return f"task {self.name!r}: {exc}{self._hint(given)}"
        return None

    def as_kwargs(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """``task.delay(*args, **kwargs)``: positionals named after the handler's parameters
        (jobs carry keyword arguments only); raises BadArgumentsError if they do not fit."""
        if not args:
            return dict(kwargs)
        try:
            bound = self.arguments.bind_partial(*args, **kwargs)
        except TypeError as exc:
            raise BadArgumentsError(f"task {self.name!r}: {exc}") from None
        named: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = self.arguments.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL or kind is inspect.Parameter.POSITIONAL_ONLY:
                raise BadArgumentsError(
                    f"task {self.name!r}: parameter {name!r} cannot be given as a keyword,"
                    " and jobs carry keyword arguments only"
                )
            named.update(value if kind is inspect.Parameter.VAR_KEYWORD else {name: value})
        return named

    def _hint(self, given: Mapping[str, Any]) -> str:
        params = self.arguments.parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return ""
        hints = [
            f"; did you mean {close[0]!r} for {name!r}?"
            for name in given
            if name not in params and (close := difflib.get_close_matches(name, params, n=1))
        ]
        return hints[0] if hints else ""


def task_limits(definition: TaskDefinition) -> Limits:
    """A registered task's limits, scoped ``task:<name>``."""
    return dataclasses.replace(definition.options.limits, scope=f"task:{definition.name}")


TASK_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(TaskOptions))


def make_options(where: str, options: Mapping[str, Any]) -> TaskOptions:
    """``@app.task(**options)`` as TaskOptions; an unknown option is a BadArgumentsError that
    names ``where`` and suggests the closest option name."""
    for key in options:
        if key not in TASK_OPTION_NAMES:
            close = suggestion(key, TASK_OPTION_NAMES)
            raise BadArgumentsError(f"{where}: unknown task option {key!r}{close}")
    return TaskOptions(**options)


def suggestion(name: str, known: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest of ``known`` to ``name``, or an empty string."""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _context_param(fn: Callable[..., Any]) -> str | None:
    for param in inspect.signature(fn).parameters.values():
        annotation = param.annotation
        label = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
        if label.rsplit(".", 1)[-1] == "TaskContext" or param.name == "ctx":
            return param.name
    return None


class TaskRegistry:
    """Task names → definitions; a duplicate name is an error, not a silent override."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskDefinition] = {}

    def register(self, definition: TaskDefinition) -> TaskDefinition:
        existing = self._tasks.get(definition.name)
        if existing is not None and existing.fn is not definition.fn:
            raise TaskError(
                f"task {definition.name!r} is already registered"
                f" (by {_where(existing.fn)}); pick another name= for {_where(definition.fn)}"
            )
        self._tasks[definition.name] = definition
        return definition

    def get(self, name: str) -> TaskDefinition | None:
        return self._tasks.get(name)

    def close_match(self, name: str) -> str | None:
        """The registered name closest to an unknown ``name`` (a likely typo), or None."""
        if name in self:
            return None
        close = difflib.get_close_matches(name, [d.name for d in self], n=1, cutoff=0.8)
        return close[0] if close else None

    def __getitem__(self, name: str) -> TaskDefinition:
        try:
            return self._tasks[name]
        except KeyError:
            close = suggestion(name, self._tasks)
            raise UnknownTaskError(f"task {name!r} is not registered{close}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[TaskDefinition]:
        return iter(sorted(self._tasks.values(), key=lambda d: d.name))

    def __len__(self) -> int:
        return len(self._tasks)


def _where(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
