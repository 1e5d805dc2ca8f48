"""Task definitions and the registry that names them."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from stem_pg.core.envelope import check_name
from stem_pg.core.errors import TaskError, UnknownTaskError
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

    def __post_init__(self) -> None:
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

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    @classmethod
    def build(cls, name: str, fn: Callable[..., Any], options: TaskOptions) -> TaskDefinition:
        """Inspect ``fn``: a parameter annotated ``TaskContext`` (or named ``ctx``) gets the context."""
        check_name(name, what="task name")
        return cls(name, fn, options, _context_param(fn))


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

    def __getitem__(self, name: str) -> TaskDefinition:
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTaskError(f"task {name!r} is not registered") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[TaskDefinition]:
        return iter(sorted(self._tasks.values(), key=lambda d: d.name))

    def __len__(self) -> int:
        return len(self._tasks)


def _where(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
