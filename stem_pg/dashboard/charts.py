"""Per-minute series of the last hour: sparkline points (inline SVG) and chart data (uPlot)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from stem_pg.db.stores.dashboard_rows import MinuteRow

MINUTES = 60


def minute_axis(now: datetime | None = None) -> list[datetime]:
    last = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    return [last - timedelta(minutes=MINUTES - 1 - i) for i in range(MINUTES)]


def per_queue(rows: list[MinuteRow], axis: list[datetime]) -> dict[str, dict[str, list[float]]]:
    """Each queue's finished and failure-rate series along ``axis``."""
    index = {moment: i for i, moment in enumerate(axis)}
    series: dict[str, dict[str, list[float]]] = defaultdict(
        lambda: {"finished": [0.0] * len(axis), "failed": [0.0] * len(axis)}
    )
    for row in rows:
        i = index.get(row.minute.astimezone(UTC))
        if i is not None:
            series[row.queue]["finished"][i] += row.finished
            series[row.queue]["failed"][i] += row.failed
    for values in series.values():
        values["failure_rate"] = [
            (f / n if n else 0.0) for f, n in zip(values["failed"], values["finished"], strict=True)
        ]
    return dict(series)


def overall(rows: list[MinuteRow], axis: list[datetime]) -> dict[str, Any]:
    """The namespace's throughput, failures and mean wait per minute, as uPlot wants them:
    the x values (epoch seconds) first, then one list per series."""
    index = {moment: i for i, moment in enumerate(axis)}
    finished = [0.0] * len(axis)
    failed = [0.0] * len(axis)
    waited = [0.0] * len(axis)
    for row in rows:
        i = index.get(row.minute.astimezone(UTC))
        if i is not None:
            finished[i] += row.finished
            failed[i] += row.failed
            waited[i] += (row.wait or 0.0) * row.finished
    wait = [(w / n if n else None) for w, n in zip(waited, finished, strict=True)]
    return {"x": [int(m.timestamp()) for m in axis], "finished": finished, "failed": failed, "wait": wait}


def sparkline(values: list[float], width: int = 120, height: int = 24) -> str:
    """SVG polyline points for ``values`` scaled into width x height (empty: a flat line)."""
    if not values:
        return ""
    top = max(values) or 1.0
    step = width / max(len(values) - 1, 1)
    return " ".join(
        f"{i * step:.1f},{height - (v / top) * (height - 2) - 1:.1f}" for i, v in enumerate(values)
    )
