"""``stem observe``'s views: the rows each one reads, and how a table shows them (pure).

Each view is a list of typed rows (seconds and counts, as ``--json`` prints them) and a
rendering into headers and human cells (``core.human``) for a terminal table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from stem_pg.core.heartbeats import Beat
from stem_pg.core.human import count_text, duration_text, percent_text, rate_text

VIEW_NAMES = ("queues", "workers", "dlq", "schedules")
#: The windows of the queue latency columns, by name, in minutes.
WINDOWS = {"1m": 1, "5m": 5, "15m": 15}


def check_view(name: str) -> str:
    """``name`` if it is a view, else ValueError naming the choices."""
    if name not in VIEW_NAMES:
        raise ValueError(f"unknown view {name!r}: choose one of {', '.join(VIEW_NAMES)}")
    return name


def check_window(name: str) -> str:
    """``name`` if it is a latency window (``1m``, ``5m``, ``15m``), else ValueError."""
    if name not in WINDOWS:
        raise ValueError(f"unknown window {name!r}: choose one of {', '.join(WINDOWS)}")
    return name


@dataclass(frozen=True)
class QueueHealth:
    """One row of the ``queue_health`` view, every column."""

    queue: str
    ready: int
    scheduled: int
    running: int
    oldest_ready_age: float | None
    wait_p50_1m: float | None
    wait_p95_1m: float | None
    wait_p50_5m: float | None
    wait_p95_5m: float | None
    wait_p50_15m: float | None
    wait_p95_15m: float | None
    run_p50_1m: float | None
    run_p95_1m: float | None
    run_p50_5m: float | None
    run_p95_5m: float | None
    run_p50_15m: float | None
    run_p95_15m: float | None
    finished_1m: int
    finished_5m: int
    finished_15m: int
    failed_15m: int
    failure_rate_15m: float | None


@dataclass(frozen=True)
class WorkerView:
    """A worker from the ``workers`` table; the live counts come from its latest heartbeat
    on the topic (None until one was heard)."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    status: str
    uptime: float
    heartbeat_age: float
    inflight: int | None = None
    processed: int | None = None
    failed: int | None = None


@dataclass(frozen=True)
class DeadLetterGroup:
    """The dead letters not yet replayed of one queue and task."""

    queue: str
    task: str
    dead: int
    dead_1h: int
    newest_age: float
    oldest_age: float
    top_reason: str


@dataclass(frozen=True)
class ScheduleView:
    """A schedule entry: when it runs next (``next_run_in`` < 0: overdue) and how it went."""

    name: str
    task: str
    queue: str | None
    enabled: bool
    next_run_in: float | None
    last_run_age: float | None
    total_runs: int
    drift: float | None
    last_error: str | None
    last_error_age: float | None


def with_beats(rows: Sequence[WorkerView], beats: dict[str, Beat]) -> list[WorkerView]:
    """``rows`` with the live counts of each worker's latest heartbeat in ``beats`` (by worker id)."""
    merged = []
    for row in rows:
        beat = beats.get(row.id)
        if beat is not None:
            row = replace(row, inflight=beat.inflight, processed=beat.processed, failed=beat.failed)
        merged.append(row)
    return merged


def table(view: str, rows: Sequence[Any], *, window: str = "5m") -> tuple[list[str], list[list[str]]]:
    """The headers and the cells of ``view``'s table (latency columns over ``window``)."""
    headers, cells = _RENDERERS[view](window)
    return headers, [cells(row) for row in rows]


def _queues(window: str) -> tuple[list[str], Callable[[QueueHealth], list[str]]]:
    headers = ["queue", "ready", "scheduled", "running", "oldest ready"]
    headers += [f"wait p50/p95 {window}", f"run p50/p95 {window}", "done 1m/5m/15m", "failed 15m"]

    def cells(q: QueueHealth) -> list[str]:
        wait = (getattr(q, f"wait_p50_{window}"), getattr(q, f"wait_p95_{window}"))
        run = (getattr(q, f"run_p50_{window}"), getattr(q, f"run_p95_{window}"))
        done = (q.finished_1m, q.finished_5m, q.finished_15m)
        rates = " ".join(rate_text(n, m) for n, m in zip(done, WINDOWS.values(), strict=True))
        failed = count_text(q.failed_15m)
        if q.failure_rate_15m is not None:
            failed += f" ({percent_text(q.failure_rate_15m)})"
        return [
            q.queue, count_text(q.ready), count_text(q.scheduled), count_text(q.running),
            _duration(q.oldest_ready_age), _pair(*wait), _pair(*run), rates, failed,
        ]  # fmt: skip

    return headers, cells


def _workers(_window: str) -> tuple[list[str], Callable[[WorkerView], list[str]]]:
    headers = ["worker", "status", "host", "pid", "queues", "in flight", "processed", "failed"]
    headers += ["uptime", "last beat"]

    def cells(w: WorkerView) -> list[str]:
        inflight = "-" if w.inflight is None else count_text(w.inflight)
        return [
            w.id, w.status, w.host, str(w.pid), ",".join(w.queues), f"{inflight}/{w.concurrency}",
            _count(w.processed), _count(w.failed), duration_text(w.uptime), _ago(w.heartbeat_age),
        ]  # fmt: skip

    return headers, cells


def _dlq(_window: str) -> tuple[list[str], Callable[[DeadLetterGroup], list[str]]]:
    headers = ["queue", "task", "dead", "last hour", "newest", "oldest", "top reason"]

    def cells(d: DeadLetterGroup) -> list[str]:
        return [
            d.queue, d.task, count_text(d.dead), count_text(d.dead_1h), _ago(d.newest_age),
            _ago(d.oldest_age), d.top_reason,
        ]  # fmt: skip

    return headers, cells


def _schedules(_window: str) -> tuple[list[str], Callable[[ScheduleView], list[str]]]:
    headers = ["name", "task", "queue", "enabled", "next run", "last run", "runs", "drift", "last error"]

    def cells(s: ScheduleView) -> list[str]:
        return [
            s.name, s.task, s.queue or "-", "yes" if s.enabled else "no", _next_run(s.next_run_in),
            _ago(s.last_run_age), count_text(s.total_runs), _duration(s.drift), _error(s),
        ]  # fmt: skip

    return headers, cells


_RENDERERS: dict[str, Callable[[str], tuple[list[str], Callable[[Any], list[str]]]]] = {
    "queues": _queues,
    "workers": _workers,
    "dlq": _dlq,
    "schedules": _schedules,
}


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else duration_text(seconds)


def _ago(seconds: float | None) -> str:
    return "-" if seconds is None else f"{duration_text(max(0.0, seconds))} ago"


def _count(count: int | None) -> str:
    return "-" if count is None else count_text(count)


def _pair(p50: float | None, p95: float | None) -> str:
    return "-" if p50 is None or p95 is None else f"{duration_text(p50)} / {duration_text(p95)}"


def _next_run(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"in {duration_text(seconds)}" if seconds >= 0 else f"overdue {duration_text(-seconds)}"


def _error(s: ScheduleView) -> str:
    if s.last_error is None:
        return "-"
    first_line = s.last_error.splitlines()[0] if s.last_error.strip() else s.last_error
    text = first_line if len(first_line) <= 40 else first_line[:39] + "…"
    return text if s.last_error_age is None else f"{text} ({_ago(s.last_error_age)})"
