"""The final table of ``python -m bench all``: every case as a ratio, its target, met or missed.

Built from whatever sections the report holds (``throughput``, ``enqueue``, ``latency``,
``rss`` and ``backlog`` print the same table for their own sections). Columns: the
metric, stem_pg's figure, the comparator's (named in the cell), stem_pg / comparator,
the target, and the verdict (bench/targets.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.celery_broker import LABELS
from bench.common import Table, fmt, ratio
from bench.targets import TARGETS, above, at_least, at_most, lowest, verdict

INFO = "(info)"


def _other(value: float | None, name: str) -> str:
    return "-" if value is None or fmt(value) == "-" else f"{fmt(value)} ({name})"


class _Rows:
    def __init__(self) -> None:
        self.table = Table(["metric", "stem_pg", "comparator", "ratio", "target", "met/missed"])

    def add(
        self,
        metric: str,
        mine: float | None,
        other: float | None = None,
        name: str = "",
        target: str = INFO,
        checks: Sequence[bool | None] = (),
        versus: float | None = None,
    ) -> None:
        """``versus``: the ratio when it is not mine / other."""
        r = versus if versus is not None else ratio(mine, other)
        self.table.add(metric, mine, _other(other, name), r, target, verdict(checks) if checks else "-")


def _get(section: dict[str, Any] | None, key: str) -> Any:
    return section.get(key) if section else None


def summary(report: dict[str, Any]) -> Table:
    """stem_pg against pgqueuer, Celery, the raw-SQL ceiling and its own reference drains."""
    rows = _Rows()
    _throughput(rows, report)
    _enqueue(rows, report)
    _latency(rows, report)
    _backlogs(rows, report)
    _memory(rows, report)
    return rows.table


def _throughput(rows: _Rows, report: dict[str, Any]) -> None:
    tp, ptp = report.get("throughput"), report.get("pgq_throughput")
    if not tp:
        return
    mine = tp["jobs_per_s"]
    r = ratio(mine, _get(ptp, "jobs_per_s"))
    rows.add(
        f"throughput, {tp['jobs']:,} backlog, jobs/s (P={tp['processes']} C={tp['concurrency']}"
        f" M={tp['prefetch']})",
        mine,
        _get(ptp, "jobs_per_s"),
        "pgqueuer",
        f">= {TARGETS['throughput_jobs_per_s']:,.0f} and >= {TARGETS['throughput_vs_pgqueuer']:g}x pgqueuer",
        [at_least(mine, TARGETS["throughput_jobs_per_s"]), at_least(r, TARGETS["throughput_vs_pgqueuer"])],
    )
    if "cpu_total_us_per_job" in tp:
        rows.add(
            "CPU per job, worker + its Postgres backends, us (the run above)",
            tp["cpu_total_us_per_job"],
            _get(ptp, "cpu_total_us_per_job"),
            "pgqueuer",
            "(info: lower is better)",
        )
    ce = report.get("ceiling")
    if ce:
        r = ratio(mine, ce["jobs_per_s"])
        rows.add(
            f"throughput vs the raw-SQL ceiling (pgbench claim.sql, async, batch {ce['batch']})",
            mine,
            ce["jobs_per_s"],
            "ceiling",
            f">= {TARGETS['throughput_vs_ceiling']:g}x the ceiling",
            [at_least(r, TARGETS["throughput_vs_ceiling"])],
        )
    tpi = report.get("throughput_ignore_result")
    if tpi:
        rows.add("throughput, ignore_result=True vs results kept, jobs/s", tpi["jobs_per_s"], mine, "kept")
    for broker, row in (report.get("celery_throughput") or {}).items():
        rows.add(f"throughput vs {LABELS[broker]}, jobs/s", mine, row.get("jobs_per_s"), LABELS[broker])
    qs = report.get("queues_spread")
    if qs:
        r = ratio(qs["jobs_per_s"], mine)
        rows.add(
            f"{qs['queues']} queues x {qs['priorities']} priorities vs 1 queue, jobs/s",
            qs["jobs_per_s"],
            mine,
            "1 queue",
            f">= {TARGETS['queues_vs_one_queue']:g}x the 1-queue drain",
            [at_least(r, TARGETS["queues_vs_one_queue"])],
        )
    if tp.get("max_connections_per_process"):
        n = tp["max_connections_per_process"]
        rows.add(
            "Postgres connections per worker process (max during the drain above)",
            n,
            target=f"<= {TARGETS['connections_per_process']:g} (default --connections)",
            checks=[at_most(n, TARGETS["connections_per_process"])],
        )
    _burn(rows, report)


def _burn(rows: _Rows, report: dict[str, Any]) -> None:
    burn, pburn, noop = report.get("burn"), report.get("pgq_burn"), report.get("burn_noop")
    if not burn:
        return
    r = ratio(burn["jobs_per_s"], _get(pburn, "jobs_per_s"))
    rows.add(
        f"CPU-bound (1 ms CPU, P={burn['processes']} C={burn['concurrency']}), jobs/s",
        burn["jobs_per_s"],
        _get(pburn, "jobs_per_s"),
        "pgqueuer",
        f">= {TARGETS['burn_vs_pgqueuer']:g}x pgqueuer",
        [at_least(r, TARGETS["burn_vs_pgqueuer"])],
    )
    mine = burn.get("cpu_postgres_us_per_job")
    noop_cpu = _get(noop, "cpu_postgres_us_per_job")
    r = ratio(mine, noop_cpu)
    rows.add(
        "CPU-bound, Postgres CPU per job, us (vs no-ops at the same P and C)",
        mine,
        noop_cpu,
        "no-op",
        f"<= {TARGETS['burn_server_cpu_vs_noop']:g}x the no-op case",
        [at_most(r, TARGETS["burn_server_cpu_vs_noop"])],
    )
    tp = report.get("throughput") or {}
    if tp.get("cpu_postgres_us_per_job"):
        rows.add(
            "CPU-bound, Postgres CPU per job, us (vs the main no-op drain above)",
            mine,
            tp["cpu_postgres_us_per_job"],
            "main no-op",
        )


def _enqueue(rows: _Rows, report: dict[str, Any]) -> None:
    en, pen = report.get("enqueue"), report.get("pgq_enqueue")
    if en:
        many, single = en["many_jobs_per_s"], en["single_jobs_per_s"]
        rows.add(
            "enqueue_many, jobs/s (best batch)",
            many,
            _get(pen, "many_jobs_per_s"),
            "pgqueuer",
            f">= {TARGETS['enqueue_many_jobs_per_s']:,.0f}",
            [at_least(many, TARGETS["enqueue_many_jobs_per_s"])],
        )
        rows.add(
            f"single enqueue, {en['single_threads']} producer threads, jobs/s",
            single,
            _get(pen, "single_jobs_per_s"),
            "pgqueuer",
            f">= {TARGETS['enqueue_single_jobs_per_s']:,.0f}",
            [at_least(single, TARGETS["enqueue_single_jobs_per_s"])],
        )
    loop, ploop = report.get("enqueue_loop"), report.get("pgq_enqueue_loop")
    if loop:
        r = ratio(loop["jobs_per_s"], _get(ploop, "jobs_per_s"))
        rows.add(
            "single enqueue back to back, 1 producer, jobs/s",
            loop["jobs_per_s"],
            _get(ploop, "jobs_per_s"),
            "pgqueuer",
            f">= {TARGETS['enqueue_loop_vs_pgqueuer']:g}x pgqueuer",
            [at_least(r, TARGETS["enqueue_loop_vs_pgqueuer"])],
        )
        net = "commits_per_call_net" in loop
        cpc = loop["commits_per_call_net"] if net else loop.get("commits_per_call")
        rows.add(
            "single enqueue back to back, commits per enqueue" + (" (less the app's opening)" if net else ""),
            cpc,
            _get(ploop, "commits_per_call"),
            "pgqueuer",
            "<= 1 (1 % slack)",
            [at_most(cpc, TARGETS["enqueue_loop_commits_per_call"])],
        )


def _latency(rows: _Rows, report: dict[str, Any]) -> None:
    lt = report.get("latency")
    if not lt:
        return
    others = [o for o in [report.get("pgq_latency"), *(report.get("celery_latency") or {}).values()] if o]
    for key, target in (("p50_ms", "latency_p50_ms"), ("p99_ms", "latency_p99_ms")):
        best = min(others, key=lambda o: o[key], default=None)
        checks = [at_most(lt[key], TARGETS[target]), lowest(lt[key], [o[key] for o in others])]
        rows.add(
            f"enqueue -> start latency {key[:3]}, ms (n={lt['n']}, misses {lt['misses']})",
            lt[key],
            _get(best, key),
            f"lowest other: {best['system']}" if best else "",
            f"<= {TARGETS[target]:g} ms and the lowest of all",
            checks,
        )


def _backlogs(rows: _Rows, report: dict[str, Any]) -> None:
    tp, big = report.get("throughput"), report.get("backlog_1m")
    if big and tp:
        r = ratio(big["jobs_per_s"], tp["jobs_per_s"])
        rows.add(
            f"throughput, {big['jobs']:,} backlog vs {tp['jobs']:,}, jobs/s",
            big["jobs_per_s"],
            tp["jobs_per_s"],
            f"{tp['jobs']:,}",
            f">= {TARGETS['backlog_1m_vs_100k']:g}x",
            [at_least(r, TARGETS["backlog_1m_vs_100k"])],
        )
        if "cpu_total_us_per_job" in big and "cpu_total_us_per_job" in tp:
            rows.add(
                f"CPU per job, {big['jobs']:,} backlog, us (ratio: smaller backlog's CPU / this)",
                big["cpu_total_us_per_job"],
                tp["cpu_total_us_per_job"],
                f"{tp['jobs']:,}",
                "(info: the rate ratio if CPU-bound)",
                versus=ratio(tp["cpu_total_us_per_job"], big["cpu_total_us_per_job"]),
            )
    delayed = report.get("delayed") or []
    steady = next((d for d in delayed if d["order"] == "none"), None)
    for row in delayed:
        if row["order"] == "none" or steady is None:
            continue
        r = ratio(row["jobs_per_s"], steady["jobs_per_s"])
        total = row["due"] + row["delayed"]
        rows.add(
            f"{total:,} backlog, {row['delayed']:,} delayed ({row['order']}): the due ones, jobs/s",
            row["jobs_per_s"],
            steady["jobs_per_s"],
            "steady",
            f">= {TARGETS['delayed_vs_steady']:g}x the steady rate",
            [at_least(r, TARGETS["delayed_vs_steady"])],
        )
    _payloads(rows, report)


def _payloads(rows: _Rows, report: dict[str, Any]) -> None:
    if not report.get("payload"):
        return
    from bench.payload import best

    results = report["payload"]["results"]
    for size in sorted({r["size"] for r in results}):
        mine, other = best(results, "stem_pg", size), best(results, "pgqueuer", size)
        if mine is None:
            continue
        r = ratio(mine["jobs_per_s"], _get(other, "jobs_per_s"))
        rows.add(
            f"payload {size:,} B, jobs/s ({mine['jobs']:,} jobs)",
            mine["jobs_per_s"],
            _get(other, "jobs_per_s"),
            "pgqueuer",
            "ahead of pgqueuer (> 1x)",
            [above(r, TARGETS["payload_vs_pgqueuer"])],
        )


def _memory(rows: _Rows, report: dict[str, Any]) -> None:
    for row in report.get("rss", []):
        # The peak: VmHWM can be below a VmRSS sampled earlier (the kernel updates the
        # high-water mark lazily, and memory freed by madvise() lowers RSS without it).
        peak = max(row["hwm_rss_mb"], row.get("max_rss_mb") or 0.0)
        rows.add(
            f"worker RSS at concurrency {row['concurrency']}, {row['task']}, MB (peak of VmHWM, VmRSS)",
            peak,
            target=f"<= {TARGETS['rss_mb']:g} MB",
            checks=[at_most(peak, TARGETS["rss_mb"])],
        )
