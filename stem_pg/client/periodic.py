"""Schedule entries declared in code: ``@app.periodic(cron="0 2 * * *", timezone=...)``.

The app only records them (checked at once, as a schedule file's entries are); beat
syncs them into the namespace's schedule store when it starts
(``Schedules.sync_code``), beside the entries applied from files. The task is
resolved then, so ``@app.periodic`` may sit above or below ``@app.task``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from stem_pg.core.errors import ScheduleError, StemError
from stem_pg.core.schedules import ScheduleEntry, check_name, parse_entry
from stem_pg.core.tasks import TaskRegistry

F = TypeVar("F")

#: What ``@app.periodic`` takes besides the spec, as in a schedule file's entry.
OPTIONS = ("queue", "priority", "jitter", "enabled", "expires_at", "misfire", "misfire_grace", "description")


@dataclass(frozen=True)
class Declared:
    """One ``@app.periodic``: the checked entry (its task still provisional) and its target."""

    entry: ScheduleEntry
    target: Any
    where: str
    args: tuple[Any, ...]


class PeriodicEntries:
    """The entries an app declares in code, by name."""

    def __init__(self) -> None:
        self.declared: dict[str, Declared] = {}

    def decorator(
        self,
        *,
        cron: str | None = None,
        every: str | float | timedelta | None = None,
        spec: Any = None,
        timezone: str | None = None,
        name: str | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Callable[[F], F]:
        """Record an entry for the decorated task; raises ScheduleError (naming the entry and
        the key) for a bad spec or option, or a name declared twice."""
        specs = {"cron": cron, "every": every, "spec": spec}
        given = [key for key, value in specs.items() if value is not None]
        if len(given) != 1:
            raise ScheduleError(f"@app.periodic takes one of cron=, every= or spec=, got {given or 'none'}")
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            allowed = ", ".join(OPTIONS)
            raise ScheduleError(f"@app.periodic: unknown option {unknown[0]!r} (allowed: {allowed})")
        if isinstance(every, timedelta):
            every = every.total_seconds()
        raw = {"cron": cron} if cron is not None else {"every": every} if every is not None else spec

        def declare(target: F) -> F:
            default = _default_name(target)
            entry_name = name or default
            where = f"@app.periodic on {default}"
            if name is None and not _schedule_name(default):
                raise ScheduleError(f"{where}: {default!r} is no schedule name: give the entry a name=")
            body = {"task": default, "spec": raw, "timezone": timezone, "kwargs": dict(kwargs or {})}
            body.update(options)
            entry = parse_entry(entry_name, {k: v for k, v in body.items() if v is not None}, source=where)
            if entry_name in self.declared:
                other = self.declared[entry_name].where
                why = f"is declared twice (also {other}): give each a name="
                raise ScheduleError(f"{where}: entry {entry_name!r} {why}")
            self.declared[entry_name] = Declared(entry, target, where, tuple(args))
            return target

        return declare

    def entries(self, registry: TaskRegistry) -> list[ScheduleEntry]:
        """The declared entries with their tasks resolved; ScheduleError naming the declaration
        of one whose function is no task of the app, or whose ``args`` do not fit it."""
        resolved = []
        for declared in self.declared.values():
            task = _task_name(declared.target, registry)
            if task is None:
                raise ScheduleError(
                    f"{declared.where}: {_default_name(declared.target)} is not a task of this app:"
                    " decorate it with @app.task too"
                )
            entry = declared.entry
            try:
                kwargs = registry[task].as_kwargs(declared.args, entry.kwargs)
            except StemError as exc:
                raise ScheduleError(f"{declared.where}: args: {exc}") from None
            resolved.append(dataclasses.replace(entry, task=task, kwargs=kwargs))
        return resolved


def _default_name(target: Any) -> str:
    """What ``@app.task`` names a function by default (module and qualified name)."""
    fn = getattr(target, "fn", None) or getattr(target, "__wrapped__", None) or target
    if isinstance(getattr(target, "task_name", None), str):
        return str(target.task_name)
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(target).__name__)}"


def _schedule_name(name: str) -> bool:
    try:
        check_name(name)
    except ValueError:
        return False
    return True


def _task_name(target: Any, registry: TaskRegistry) -> str | None:
    for attr in ("task_name", "workflow_name"):
        name = getattr(target, attr, None)
        if isinstance(name, str) and name in registry:
            return name
    handlers = {id(target), id(getattr(target, "fn", None)), id(getattr(target, "__wrapped__", None))}
    return next((d.name for d in registry if id(d.fn) in handlers), None)
