"""Reconnecting after losing the database: how long to wait, and what to say (pure logic).

Every loop that talks to the database (the worker's claimer, flusher, heartbeat,
listener, control and maintenance, beat's loops, the client's waker and result
waiters) keeps one ``Outage`` per connection. A failure asks it for the delay
before the next attempt: exponential from ``first`` to ``cap`` with jitter, so
the loops of many processes do not reconnect in step, and a down server gets a
few attempts per second at most. It also says whether this failure *starts* an
outage (log one warning) and, on the next success, how long the outage lasted
(log one "reconnected after N s" line): one pair of lines per outage, not one
warning per attempt.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

#: The first delay after a failure (seconds); it doubles per failed attempt up to ``RECONNECT_CAP``.
RECONNECT_FIRST = 0.1
#: The longest delay between two attempts: a server that comes back is found within a few seconds.
RECONNECT_CAP = 3.0


@dataclass(frozen=True)
class Failure:
    """What a failed attempt means: ``starts`` an outage (the one warning), ``delay`` until
    the next attempt, ``attempts`` failed so far in this outage."""

    starts: bool
    delay: float
    attempts: int


@dataclass(frozen=True)
class Recovery:
    """An outage just ended: it lasted ``seconds`` and took ``attempts`` failed attempts."""

    seconds: float
    attempts: int

    def describe(self) -> str:
        plural = "" if self.attempts == 1 else "s"
        return f"after {self.seconds:.1f} s ({self.attempts} failed attempt{plural})"


class Outage:
    """One connection's outage state and backoff.

    ``failed()`` after each failed attempt, ``recovered()`` after each success (it returns
    the Recovery only for the first success after failures). ``clock`` and ``uniform`` are
    injectable for tests.
    """

    def __init__(
        self,
        first: float = RECONNECT_FIRST,
        cap: float = RECONNECT_CAP,
        *,
        clock: Callable[[], float] = time.monotonic,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        for name, value in (("first", first), ("cap", cap)):
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"backoff {name} must be a finite number > 0, got {value!r}")
        self.first = first
        self.cap = max(cap, first)
        self.clock = clock
        self.uniform = uniform
        self.started_at: float | None = None
        self.attempts = 0

    @property
    def ongoing(self) -> bool:
        return self.started_at is not None

    def next_delay(self) -> float:
        """The delay after the current number of failures, with jitter in [delay/2, delay]."""
        ceiling = min(self.cap, self.first * 2 ** max(0, self.attempts - 1))
        return self.uniform(ceiling / 2, ceiling)

    def failed(self) -> Failure:
        starts = self.started_at is None
        if starts:
            self.started_at = self.clock()
        self.attempts += 1
        return Failure(starts=starts, delay=self.next_delay(), attempts=self.attempts)

    def recovered(self) -> Recovery | None:
        started, attempts = self.started_at, self.attempts
        self.started_at = None
        self.attempts = 0
        if started is None:
            return None
        return Recovery(seconds=max(0.0, self.clock() - started), attempts=attempts)
