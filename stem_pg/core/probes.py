"""``stem check``'s conditions: parse their limits and name each one a reading violates (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from stem_pg.core.human import duration_text, percent_text


@dataclass(frozen=True)
class Limits:
    """What healthy means; None: that condition is not checked."""

    max_age: float | None = None  # seconds the oldest ready job of a queue may wait
    max_failed_rate: float | None = None  # 0..1, of the jobs finished in the last 15 minutes
    min_workers: int | None = None  # alive workers consuming each queue
    max_schedule_lag: float | None = None  # seconds an enabled schedule entry may be overdue


@dataclass(frozen=True)
class QueueRow:
    """One row of the ``queue_health`` view, as far as the conditions need it."""

    queue: str
    ready: int
    oldest_ready_age: float | None
    finished_15m: int
    failed_15m: int
    failure_rate_15m: float | None


@dataclass(frozen=True)
class QueueReading:
    """One queue as the ``queue_health`` view and the workers table see it."""

    queue: str
    ready: int
    oldest_ready_age: float | None
    finished_15m: int
    failed_15m: int
    failure_rate_15m: float | None
    workers: int


@dataclass(frozen=True)
class LateSchedule:
    """An enabled schedule entry whose next run is overdue by ``lag`` seconds."""

    name: str
    lag: float


def readings(
    rows: Sequence[QueueRow], worker_queues: Sequence[Sequence[str]], selected: Sequence[str]
) -> list[QueueReading]:
    """The queues to check: ``selected`` (a queue the view does not list is idle: nothing ready,
    nothing finished), else every queue the view lists; each with the alive workers consuming it."""
    by_name = {row.queue: row for row in rows}
    names = list(dict.fromkeys(selected)) if selected else [row.queue for row in rows]
    found = []
    for name in names:
        row = by_name.get(name) or QueueRow(name, 0, None, 0, 0, None)
        workers = sum(1 for queues in worker_queues if name in queues)
        found.append(QueueReading(**{**asdict(row), "workers": workers}))
    return found


def parse_rate(text: str, *, what: str = "rate") -> float:
    """A fraction 0..1 from ``1%``, ``0.5%`` or ``0.01``; ValueError names ``what``."""
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw.removesuffix("%").strip())
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a rate (use e.g. 1% or 0.01)") from None
    if math.isnan(value):
        raise ValueError(f"{what}: {text!r} is not a rate (use e.g. 1% or 0.01)")
    fraction = value / 100 if percent else value
    if not 0 <= fraction <= 1:
        raise ValueError(f"{what}: {text!r} must be between 0% and 100%")
    return fraction


def violations(
    limits: Limits, queues: Sequence[QueueReading], late: Sequence[LateSchedule], *, workers_alive: int
) -> list[str]:
    """One line per violated condition, naming the queue (or schedule), the measured value and
    the limit; empty when all hold. ``workers_alive`` is checked when no queue is (an empty
    namespace still needs its workers)."""
    lines: list[str] = []
    for q in queues:
        lines.extend(_queue_violations(limits, q))
    if limits.min_workers is not None and not queues and workers_alive < limits.min_workers:
        lines.append(f"workers: {workers_alive} alive, fewer than --min-workers {limits.min_workers}")
    if limits.max_schedule_lag is not None:
        for entry in late:
            lines.append(
                f"schedule {entry.name!r}: next run overdue by {duration_text(entry.lag)}, more than"
                f" --max-schedule-lag {duration_text(limits.max_schedule_lag)}"
            )
    return lines


def _queue_violations(limits: Limits, q: QueueReading) -> list[str]:
    lines = []
    age = q.oldest_ready_age
    if limits.max_age is not None and age is not None and age > limits.max_age:
        lines.append(
            f"queue {q.queue!r}: oldest ready job waits {duration_text(age)}, more than"
            f" --max-age {duration_text(limits.max_age)} ({q.ready} ready)"
        )
    rate = q.failure_rate_15m
    if limits.max_failed_rate is not None and rate is not None and rate > limits.max_failed_rate:
        lines.append(
            f"queue {q.queue!r}: {percent_text(rate)} of jobs failed in the last 15 minutes"
            f" ({q.failed_15m} of {q.finished_15m}), more than --max-failed-rate"
            f" {percent_text(limits.max_failed_rate)}"
        )
    if limits.min_workers is not None and q.workers < limits.min_workers:
        lines.append(
            f"queue {q.queue!r}: {q.workers} alive workers consume it, fewer than"
            f" --min-workers {limits.min_workers}"
        )
    return lines


def summary(limits: Limits, queues: Sequence[QueueReading], *, workers_alive: int) -> str:
    """The one ``ok`` line: what was checked, and against what."""
    checked = [
        f"max-age {duration_text(limits.max_age)}" if limits.max_age is not None else "",
        f"max-failed-rate {percent_text(limits.max_failed_rate)}"
        if limits.max_failed_rate is not None
        else "",
        f"min-workers {limits.min_workers}" if limits.min_workers is not None else "",
        f"max-schedule-lag {duration_text(limits.max_schedule_lag)}"
        if limits.max_schedule_lag is not None
        else "",
    ]
    conditions = ", ".join(c for c in checked if c) or "no limits (none given)"
    names = f"queues {', '.join(q.queue for q in queues)}" if queues else "no queues"
    return f"ok: {names}; {workers_alive} workers alive; within {conditions}"
