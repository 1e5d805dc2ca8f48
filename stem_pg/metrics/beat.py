"""A beat process's metrics: schedule entries fired and how late, and whether it leads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stem_pg.core.signals import BeatFired, Signals

LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class BeatMetrics:
    """Counts what ``signals.beat_fired`` reports; ``leading()`` says whether the beat leads.
    Label-free: schedule entries can be many, and made at run time."""

    def __init__(
        self,
        signals: Signals,
        leading: Callable[[], bool],
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.registry = registry = registry if registry is not None else CollectorRegistry()
        self.clock = clock
        self.fires = Counter("stem_beat_fires", "Schedule entries this beat fired.", registry=registry)
        self.lag = Histogram(
            "stem_beat_fire_lag_seconds",
            "Seconds from a fire time to the enqueue of its job (schedule lag).",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.leader = Gauge("stem_beat_leader", "1 while this beat leads.", registry=registry)
        self.leader.set_function(lambda: float(leading()))
        signals.beat_fired.connect(self.fired)

    def fired(self, event: BeatFired) -> None:
        self.fires.inc()
        self.lag.observe(max(0.0, (self.clock() - event.fire_time).total_seconds()))
