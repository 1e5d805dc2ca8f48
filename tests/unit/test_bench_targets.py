"""The met / missed logic of ``python -m bench all``'s table (bench/targets.py): a missed check
wins, an unmeasured one (a comparator skipped, a NaN rate) is neither met nor missed."""

from __future__ import annotations

import pytest

from bench.targets import TARGETS, above, at_least, at_most, lowest, verdict

NAN = float("nan")


def test_bounds_are_inclusive_and_unmeasured_values_give_no_answer() -> None:
    assert at_least(1.2, TARGETS["burn_vs_pgqueuer"]) is True
    assert at_least(1.19, TARGETS["burn_vs_pgqueuer"]) is False
    assert at_most(2, TARGETS["connections_per_process"]) is True
    assert at_most(3, TARGETS["connections_per_process"]) is False
    assert above(1.0, TARGETS["payload_vs_pgqueuer"]) is False  # ahead means strictly ahead
    assert above(1.01, TARGETS["payload_vs_pgqueuer"]) is True
    for check in (at_least, at_most, above):
        assert check(None, 1.0) is None
        assert check(NAN, 1.0) is None


def test_lowest_compares_with_every_measured_other() -> None:
    assert lowest(0.9, [1.0, 2.5]) is True
    assert lowest(1.0, [1.0, 2.5]) is False  # a tie is not the lowest
    assert lowest(0.9, [1.0, 0.8]) is False
    assert lowest(0.9, [None, NAN, 1.0]) is True
    assert lowest(0.9, []) is None
    assert lowest(0.9, [None]) is None
    assert lowest(NAN, [1.0]) is None


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        ([True], "met"),
        ([True, True], "met"),
        ([True, False], "MISSED"),
        ([False, None], "MISSED"),
        ([True, None], "met (partly measured)"),
        ([None, None], "-"),
        ([], "-"),
    ],
)
def test_verdict(checks: list[bool | None], expected: str) -> None:
    assert verdict(checks) == expected


def test_the_issue_s_bounds() -> None:
    assert TARGETS["latency_p50_ms"] == 1.0
    assert TARGETS["latency_p99_ms"] == 2.5
    assert TARGETS["rss_mb"] == 50.0
    assert TARGETS["connections_per_process"] == 2
    for ratio_of_own_reference in ("queues_vs_one_queue", "delayed_vs_steady", "backlog_1m_vs_100k"):
        assert TARGETS[ratio_of_own_reference] == 0.8


def _drain(jobs_per_s: float, **extra: object) -> dict[str, object]:
    return {
        "jobs": 100_000,
        "processes": 2,
        "concurrency": 200,
        "prefetch": 4,
        "jobs_per_s": jobs_per_s,
        **extra,
    }


def test_the_all_table_has_a_verdict_per_case() -> None:
    from bench.summary import summary

    report = {
        "throughput": _drain(
            30_000, cpu_total_us_per_job=60.0, cpu_postgres_us_per_job=40.0, max_connections_per_process=2
        ),
        "pgq_throughput": _drain(15_000, cpu_total_us_per_job=90.0),
        "ceiling": {"batch": 800, "jobs_per_s": 40_000},  # 0.75: missed
        "queues_spread": _drain(25_000, queues=10, priorities=10),  # 0.83: met
        "burn": _drain(900, concurrency=2, cpu_postgres_us_per_job=100.0),
        "burn_noop": _drain(5_000, concurrency=2, cpu_postgres_us_per_job=80.0),  # 1.25x: met
        "pgq_burn": _drain(450),  # 2x: met
        "enqueue_loop": {"jobs_per_s": 2_000, "commits_per_call": 1.004},
        "pgq_enqueue_loop": {"jobs_per_s": 1_900, "commits_per_call": 2.0},  # 1.05x: missed
        "latency": {"n": 1000, "misses": 0, "p50_ms": 0.9, "p99_ms": 2.0},
        "pgq_latency": {"system": "pgqueuer", "p50_ms": 1.1, "p99_ms": 3.0},
        "celery_latency": {"amqp": {"system": "Celery/RabbitMQ", "p50_ms": 1.0, "p99_ms": 1.9}},
        "delayed": [
            {"order": "none", "due": 500_000, "delayed": 0, "jobs_per_s": 20_000},
            {"order": "first", "due": 500_000, "delayed": 500_000, "jobs_per_s": 17_000},
            {"order": "mixed", "due": 500_000, "delayed": 500_000, "jobs_per_s": 15_000},
        ],
        "rss": [
            {"concurrency": 200, "task": "noop", "hwm_rss_mb": 49.0, "max_rss_mb": 48.0},
            {"concurrency": 200, "task": "sync_sleep", "hwm_rss_mb": 45.7, "max_rss_mb": 54.4},  # the peak
        ],
    }
    rows = {row[0]: row for row in summary(report).rows}

    def verdict_of(start: str) -> str:
        (found,) = [row[-1] for metric, row in rows.items() if metric.startswith(start)]
        return found

    assert verdict_of("throughput, 100,000 backlog") == "met"
    assert verdict_of("throughput vs the raw-SQL ceiling") == "MISSED"
    assert verdict_of("10 queues x 10 priorities vs 1 queue") == "met"
    assert verdict_of("Postgres connections per worker process") == "met"
    assert verdict_of("CPU-bound (1 ms CPU") == "met"
    assert rows["CPU-bound, Postgres CPU per job, us (vs no-ops at the same P and C)"][-1] == "met"
    assert verdict_of("single enqueue back to back, 1 producer") == "MISSED"
    assert rows["single enqueue back to back, commits per enqueue"][-1] == "met"
    p50 = rows["enqueue -> start latency p50, ms (n=1000, misses 0)"]
    assert p50[2] == "1.00 (lowest other: Celery/RabbitMQ)" and p50[-1] == "met"
    assert rows["enqueue -> start latency p99, ms (n=1000, misses 0)"][-1] == "MISSED"  # RabbitMQ's is lower
    delayed = [row for metric, row in rows.items() if "delayed" in metric]
    assert [row[-1] for row in delayed] == ["met", "MISSED"]  # 0.85 and 0.75 of the steady rate
    assert verdict_of("worker RSS at concurrency 200, noop") == "met"
    assert verdict_of("worker RSS at concurrency 200, sync_sleep") == "MISSED"
