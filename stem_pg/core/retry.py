"""Retry policy: exponential backoff with a cap and jitter (Stem defaults: 2 s base, 5 min cap)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

DEFAULT_BACKOFF_BASE = 2.0
DEFAULT_BACKOFF_MAX = 300.0


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait before the next attempt.

    ``attempt`` is the attempt that just failed (1 for the first run). The
    delay doubles per attempt from ``base`` up to ``maximum``. With jitter the
    delay is drawn from [delay/2, delay], so a burst of failures spreads out
    but a retry is never immediate.
    """

    max_retries: int = 3
    backoff: bool = True
    base: float = DEFAULT_BACKOFF_BASE
    maximum: float = DEFAULT_BACKOFF_MAX
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        for name in ("base", "maximum"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"retry {name} must be a finite number >= 0, got {value!r}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``attempt`` failed."""
        seconds = self.base if not self.backoff else min(self.maximum, self.base * 2 ** max(0, attempt - 1))
        if self.jitter and seconds > 0:
            seconds = (rng or random).uniform(seconds / 2, seconds)
        return seconds
