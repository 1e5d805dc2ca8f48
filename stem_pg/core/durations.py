"""Human durations ("90s", "5m", "1h30m", "2d") and moments ("1h" ago, or ISO 8601)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

#: The longest duration anything accepts (an interval, a countdown, a time limit): 3650 days,
#: about ten years. Longer ones are typos, and Python's datetimes overflow not far beyond.
MAX_DURATION = 3650 * 86400.0
MAX_DURATION_TEXT = "3650d (about 10 years)"


class DurationTooLong(ValueError):
    """A duration beyond MAX_DURATION."""


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Seconds in ``text``: a number (seconds) or unit parts like ``1h30m``; ValueError names ``what``
    (DurationTooLong beyond MAX_DURATION)."""
    raw = text.strip().lower()
    try:
        seconds = float(raw)
    except ValueError:
        parts = list(_PART.finditer(raw))
        if not parts or "".join(p.group(0) for p in parts) != raw:
            raise ValueError(f"{what}: {text!r} is not a duration (use e.g. 30s, 5m, 1h30m, 2d)") from None
        seconds = sum(float(p.group(1)) * _UNITS[p.group(2)] for p in parts)
    if math.isnan(seconds):
        raise ValueError(f"{what}: {text!r} is not a duration (use e.g. 30s, 5m, 1h30m, 2d)")
    if seconds < 0:
        raise ValueError(f"{what}: {text!r} must not be negative")
    if seconds > MAX_DURATION:
        raise DurationTooLong(f"{what}: {text!r} is longer than the maximum, {MAX_DURATION_TEXT}")
    return seconds


def parse_since(text: str, *, now: datetime | None = None, what: str = "--since") -> datetime:
    """A moment: a duration back from ``now`` (``1h``) or an ISO 8601 time (UTC if no zone)."""
    try:
        return (now or datetime.now(UTC)) - timedelta(seconds=parse_duration(text, what=what))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{what}: {text!r} is neither a duration (1h, 30m) nor an ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
