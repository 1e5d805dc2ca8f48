"""Beat's metrics: the fires beat_fired reports, how late each was, and leadership."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stem_pg.core.signals import BeatFired, Signals
from stem_pg.metrics.beat import BeatMetrics
from tests.metrics_scrape import total

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_fires_and_their_lag_are_counted() -> None:
    signals = Signals()
    leading = {"now": False}
    metrics = BeatMetrics(signals, lambda: leading["now"], clock=lambda: NOW)
    signals.beat_fired.send(BeatFired("nightly", "t.report", "id-1", NOW - timedelta(seconds=3)))
    signals.beat_fired.send(BeatFired("hourly", "t.sync", "id-2", NOW - timedelta(milliseconds=20)))
    leading["now"] = True
    text = generate_latest(metrics.registry).decode()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    assert total(samples, "stem_beat_fires_total") == 2
    assert total(samples, "stem_beat_fire_lag_seconds_count") == 2
    assert total(samples, "stem_beat_fire_lag_seconds_sum") == 3.02
    assert total(samples, "stem_beat_fire_lag_seconds_bucket", le="0.05") == 1
    assert total(samples, "stem_beat_leader") == 1
