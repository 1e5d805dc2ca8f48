"""Rate and concurrency limits: their spelling, and what a worker's limited claim needs.

A task limits itself with ``@app.task(rate_limit="100/s", concurrency_limit=3, ...)``; a
queue with ``rate_limit:`` and ``concurrency_limit:`` in the routing file. Rates are
spelled as Stem spells ``rateLimit``: ``"<count>/<unit>"``, unit ``s``, ``m`` or ``h``.
A group key (``concurrency_key="{tenant}"``, ``group_rate_key="{tenant}"``) names the
argument (or, without one, the header) whose value splits a limit into one per value.

The limits are enforced by the claim (stem_pg.worker.limited): a rate is a token
bucket of ``burst`` tokens refilled at ``per_second``, kept in the namespace's
``limiters`` table; a concurrency limit counts the jobs that run under it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_KEY = re.compile(r"^\{?([A-Za-z_][A-Za-z0-9_.-]{0,62})\}?$")
#: A bucket holds this many seconds' worth of tokens (at least one): the burst allowance.
BURST_SECONDS = 0.1


class LimitError(ValueError):
    """A limit that cannot be read; the message names the option and the value."""


@dataclass(frozen=True)
class Rate:
    """``count`` starts per ``period`` seconds, as a token bucket: ``per_second`` tokens a
    second, at most ``burst`` kept (``BURST_SECONDS`` worth, at least one)."""

    text: str
    per_second: float

    @property
    def burst(self) -> float:
        return max(1.0, math.floor(self.per_second * BURST_SECONDS))


def parse_rate(value: object, *, option: str) -> Rate:
    """``"100/s"``, ``"10/m"``, ``"500/h"`` as a Rate; anything else is a LimitError naming ``option``."""
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None or float(match[1]) <= 0:
        raise LimitError(f"{option} must look like '100/s', '10/m' or '500/h', got {value!r}")
    return Rate(value.strip() if isinstance(value, str) else "", float(match[1]) / _UNIT_SECONDS[match[2]])


def parse_key(value: object, *, option: str) -> str:
    """``"{tenant}"`` (or ``"tenant"``) as the field name ``tenant``."""
    match = _KEY.match(value) if isinstance(value, str) else None
    if match is None or match[0].count("{") != match[0].count("}"):
        raise LimitError(f"{option} must name one argument or header, like '{{tenant}}', got {value!r}")
    return match[1]


def parse_concurrency(value: object, *, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LimitError(f"{option} must be a whole number >= 1, got {value!r}")
    return value


@dataclass(frozen=True)
class Limits:
    """The limits of one task (``scope`` ``task:<name>``) or one queue (``queue:<name>``)."""

    scope: str
    rate: Rate | None = None
    group_rate: Rate | None = None
    group_key: str | None = None
    concurrency: int | None = None
    concurrency_key: str | None = None
    fail_open: bool = True

    @property
    def any(self) -> bool:
        return self.rate is not None or self.group_rate is not None or self.concurrency is not None

    def spec(self) -> dict[str, Any]:
        """What the claim function reads for this scope (``claim_limited``'s ``p_spec``)."""
        spec: dict[str, Any] = {"fail_open": self.fail_open}
        if self.rate is not None:
            spec["rate"] = True
        if self.group_rate is not None:
            spec["group_key"] = self.group_key
        if self.concurrency is not None:
            spec["concurrency"] = self.concurrency
            if self.concurrency_key is not None:
                spec["concurrency_key"] = self.concurrency_key
        fair = self.concurrency_key or self.group_key
        if fair is not None:
            spec["fair_key"] = fair
        return spec

    def rows(self) -> list[dict[str, Any]]:
        """The ``limiters`` rows this scope's limits keep their state in (key '')."""
        rows = []
        for kind, scope, rate, key in (
            ("rate", self.scope, self.rate, None),
            ("rate", self.scope.replace("task:", "group:", 1), self.group_rate, self.group_key),
        ):
            if rate is not None:
                rows.append(_row(kind, scope, rate.per_second, rate.burst, None, key, self.fail_open))
        if self.concurrency is not None:
            limit, key = self.concurrency, self.concurrency_key
            rows.append(_row("concurrency", self.scope, None, None, limit, key, self.fail_open))
        return rows


def _row(
    kind: str,
    scope: str,
    per_second: float | None,
    burst: float | None,
    concurrency: int | None,
    key_field: str | None,
    fail_open: bool,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "scope": scope,
        "per_second": per_second,
        "burst": burst,
        "concurrency": concurrency,
        "key_field": key_field,
        "fail_open": fail_open,
    }


def declared_limits(
    scope: str,
    *,
    rate_limit: object = None,
    group_rate_limit: object = None,
    group_rate_key: object = None,
    concurrency_limit: object = None,
    concurrency_key: object = None,
    limits_fail_open: object = True,
) -> Limits:
    """The limits options declare (task options, or a queue's keys in the routing file), as
    Limits; a bad value is a LimitError naming its option."""
    if not isinstance(limits_fail_open, bool):
        raise LimitError(f"limits_fail_open must be True or False, got {limits_fail_open!r}")
    if (group_rate_limit is None) != (group_rate_key is None):
        raise LimitError("group_rate_limit and group_rate_key go together: give both or neither")
    if concurrency_key is not None and concurrency_limit is None:
        raise LimitError("concurrency_key needs a concurrency_limit (the limit for each key)")
    return Limits(
        scope=scope,
        rate=None if rate_limit is None else parse_rate(rate_limit, option="rate_limit"),
        group_rate=None
        if group_rate_limit is None
        else parse_rate(group_rate_limit, option="group_rate_limit"),
        group_key=None if group_rate_key is None else parse_key(group_rate_key, option="group_rate_key"),
        concurrency=None
        if concurrency_limit is None
        else parse_concurrency(concurrency_limit, option="concurrency_limit"),
        concurrency_key=None
        if concurrency_key is None
        else parse_key(concurrency_key, option="concurrency_key"),
        fail_open=limits_fail_open,
    )


@dataclass(frozen=True)
class ClaimPlan:
    """A worker's limited queues: each one's ``claim_limited`` spec, and the limiter rows."""

    specs: Mapping[str, dict[str, Any]]
    rows: tuple[dict[str, Any], ...]

    @property
    def queues(self) -> frozenset[str]:
        return frozenset(self.specs)


def claim_plan(
    queues: Iterable[str],
    tasks: Iterable[Limits],
    queue_limits: Mapping[str, Limits],
) -> ClaimPlan:
    """Which of a worker's ``queues`` need the limited claim, and how: those with limits of
    their own, and, when any task has limits (``tasks``), every one of them: a limited task
    sent to any queue (an explicit ``queue=``, a routing file changed since) keeps its
    limits there."""
    consumed = set(queues)
    limited = [limits for limits in tasks if limits.any]
    task_specs = {limits.scope.removeprefix("task:"): limits.spec() for limits in limited}
    rows = [row for limits in limited for row in limits.rows()]
    claimed = set(consumed) if limited else set()
    claimed.update(queue for queue, limits in queue_limits.items() if queue in consumed and limits.any)
    fair = any("fair_key" in spec for spec in task_specs.values())
    specs: dict[str, dict[str, Any]] = {}
    for queue in sorted(claimed):
        specs[queue] = {"tasks": task_specs, "fair": fair}
        own = queue_limits.get(queue)
        if own is not None and own.any:
            specs[queue]["queue"] = own.spec()
            rows.extend(own.rows())
    return ClaimPlan(specs, tuple(rows))
