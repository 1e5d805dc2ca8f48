"""Numbers as people read them in a terminal: durations, ages, rates, shares (pure).

``stem check``, ``stem observe`` and ``stem worker status --follow`` print through these, so one
uptime reads ``2h 05m`` everywhere, never ``7512.406``. JSON output keeps the plain seconds.
"""

from __future__ import annotations

import math


def duration_text(seconds: float) -> str:
    """A duration: ``350ms``, ``4.2s``, ``42s``, ``7m 05s``, ``2h 05m``, ``3d 04h``; negative
    ones keep their sign (``-5s``: a schedule entry overdue)."""
    if math.isnan(seconds) or math.isinf(seconds):
        return str(seconds)
    if seconds < 0:
        return f"-{duration_text(-seconds)}"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms" if seconds < 0.9995 else "1.0s"
    whole = int(seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


def percent_text(fraction: float) -> str:
    """A share 0..1 as a percentage with up to four significant digits: ``0.5%``, ``12.35%``."""
    return f"{fraction * 100:.4g}%"


def rate_text(count: float, minutes: float) -> str:
    """``count`` events over ``minutes`` as a rate per minute: ``12/min``, ``0.4/min``."""
    per_minute = count / minutes
    if per_minute == 0:
        return "0/min"
    if per_minute < 10:
        return f"{per_minute:.1f}/min".replace(".0/", "/")
    return f"{round(per_minute)}/min"


def count_text(count: int) -> str:
    """A count with thousands separators: ``1,520``."""
    return f"{count:,}"
