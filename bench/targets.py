"""The issue's targets for ``python -m bench all``, and the met / missed logic of its table.

Pure functions (no database, no other bench module): tests/unit/test_bench_targets.py
checks them. A row of the final table holds one or more checks; each check is True
(met), False (missed) or None (not measured: a comparator skipped, a case sized 0).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

#: Bounds of the issue's targets (ratios are stem_pg / the comparator unless said).
TARGETS: dict[str, float] = {
    "throughput_jobs_per_s": 10_000,
    "throughput_vs_pgqueuer": 1.5,
    "throughput_vs_ceiling": 0.8,
    "queues_vs_one_queue": 0.8,  # 10 queues x 10 priorities / 1 queue, jobs/s
    "burn_vs_pgqueuer": 1.2,  # the CPU-bound case, jobs/s
    "burn_server_cpu_vs_noop": 1.5,  # Postgres CPU per job, burn / no-op at the same worker options
    "enqueue_many_jobs_per_s": 50_000,
    "enqueue_single_jobs_per_s": 2_000,
    "enqueue_loop_vs_pgqueuer": 1.2,
    # <= 1 commit per enqueue: the database's commits over the loop less those of opening
    # and closing the app alone (bench/run_all.py), with 1 % slack for their variation.
    "enqueue_loop_commits_per_call": 1.01,
    "latency_p50_ms": 1.0,
    "latency_p99_ms": 2.5,
    "backlog_1m_vs_100k": 0.8,
    "delayed_vs_steady": 0.8,  # the due half's rate / the steady rate
    "payload_vs_pgqueuer": 1.0,  # ahead of pgqueuer
    "rss_mb": 50.0,  # at concurrency 200
    "connections_per_process": 2,
}


def known(value: float | None) -> bool:
    """A measured number (not None, not NaN)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def at_least(value: float | None, bound: float) -> bool | None:
    return value >= bound if value is not None and known(value) else None


def at_most(value: float | None, bound: float) -> bool | None:
    return value <= bound if value is not None and known(value) else None


def above(value: float | None, bound: float) -> bool | None:
    return value > bound if value is not None and known(value) else None


def lowest(value: float | None, others: Iterable[float | None]) -> bool | None:
    """``value`` is below every other measured value (None: nothing to compare with)."""
    rest = [o for o in others if o is not None and known(o)]
    if value is None or not known(value) or not rest:
        return None
    return all(value < o for o in rest)


def verdict(checks: Sequence[bool | None]) -> str:
    """The table's last cell: ``MISSED`` if any check failed, ``met`` if all passed, ``met
    (partly measured)`` if some could not be measured, ``-`` if none could (or no check)."""
    measured = [c for c in checks if c is not None]
    if not measured:
        return "-"
    if not all(measured):
        return "MISSED"
    return "met" if len(measured) == len(checks) else "met (partly measured)"
