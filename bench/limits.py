"""``python -m bench.limits {rate,concurrency,fairness,nolimits,all}``: the limits of issue 18.

* rate: ``rate_limit="200/s"`` on one task, 4 worker processes, a backlog larger than
  60 s can start; started jobs per 10 s window (target 200/s +-5 %) and the most started
  in any 1 s window (limit 200 + the burst, 20).
* concurrency: ``concurrency_limit=3``, 4 processes x 50 slots, 0.1 s async jobs; the most
  running at once, from the handlers' own start/end times (target 3), and the rate
  (target 3 / 0.1 s = 30 jobs/s).
* fairness: tenant A enqueues 100k jobs, then tenant B 100 (``concurrency_key="{tenant}"``,
  50 each at once); when B's last job starts after B's enqueue (target <= 2 s).
* nolimits: ``python -m bench throughput`` of this checkout (the limits code, no limit
  configured) and of ``--base`` (a checkout without it), interleaved ``--repeat`` times in
  the same run; the ratio of the medians (target >= 0.97).

Every handler returns [start, end] (time.time()); the results table is the ledger.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.bench_stem import reset
from bench.common import (
    DEFAULT_DSN,
    Proc,
    Table,
    install_signal_cleanup,
    log,
    machine,
    running,
    spawn,
    write_json,
)

NAMESPACE = "bench_limits"
REPO = Path(__file__).resolve().parents[1]


def start_workers(dsn: str, *, processes: int, concurrency: int, name: str) -> Proc:
    argv = [
        sys.executable, "-m", "stem_pg", "worker", "run", "--app", "bench.limits_app:app",
        "--namespace", NAMESPACE, "--processes", str(processes), "--concurrency", str(concurrency),
    ]  # fmt: skip
    return spawn(name, argv, {"BENCH_DSN": dsn, "BENCH_NAMESPACE": NAMESPACE})


def enqueue(dsn: str, requests: list[tuple[str, dict[str, Any]]]) -> float:
    """``enqueue_many`` in batches of 5000; the time.time() the last batch committed."""
    from stem_pg.client.app import Stem
    from stem_pg.config.settings import StemConfig

    app = Stem(dsn, namespace=NAMESPACE, config=StemConfig())
    try:
        for first in range(0, len(requests), 5000):
            app.enqueue_many(requests[first : first + 5000])
        return time.time()
    finally:
        app.close()


def ledger(dsn: str, task: str, *, claimed: bool = False) -> list[tuple[float, float]]:
    """(start, end) of each finished job of ``task``, by start: as its handler saw them, or
    with ``claimed`` when the claim started it (``results.started_at``, the claim's time)."""
    start = "extract(epoch FROM started_at)" if claimed else "(result ->> 0)::float8"
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT " + start + ", (result ->> 1)::float8 FROM {}.results"
                " WHERE task = %s AND state = 'succeeded'"
            ).format(sql.Identifier(NAMESPACE)),
            (task,),
        ).fetchall()
    return sorted((float(r[0]), float(r[1])) for r in rows)


def rate(dsn: str, seconds: float = 60.0) -> dict[str, Any]:
    reset(dsn, NAMESPACE)
    enqueue(dsn, [("rated", {})] * int(200 * seconds * 1.2))
    log(f"rate: 4 processes, rate_limit=200/s, {seconds:.0f} s")
    with running([start_workers(dsn, processes=4, concurrency=50, name="rate")]):
        time.sleep(seconds + 15)  # start-up, then the measured minute
    found = {
        name: windows_of(sorted(s for s, _ in ledger(dsn, "rated", claimed=claimed)), seconds)
        for name, claimed in (("claimed", True), ("handler_started", False))
    }
    return {**found, "burst_allowance": 20}


def windows_of(starts: list[float], seconds: float) -> dict[str, Any]:
    """Starts per second in each 10 s window of the first ``seconds``, and the most in 1 s."""
    first = starts[0]
    starts = [s for s in starts if s < first + seconds]
    windows = [
        (bisect.bisect_left(starts, first + w + 10) - bisect.bisect_left(starts, first + w)) / 10
        for w in range(0, int(seconds), 10)
    ]
    peak_1s = max(bisect.bisect_left(starts, at + 1.0) - i for i, at in enumerate(starts))
    return {
        "per_10s_window_jobs_per_s": windows,
        "worst_10s_deviation_pct": round(max(abs(w - 200) / 2 for w in windows), 2),
        "max_started_in_1s": peak_1s,
    }


def concurrency(dsn: str, seconds: float = 20.0) -> dict[str, Any]:
    reset(dsn, NAMESPACE)
    enqueue(dsn, [("slots", {})] * int(30 * seconds * 2))
    log(f"concurrency: 4 processes x 50 slots, concurrency_limit=3, {seconds:.0f} s")
    with running([start_workers(dsn, processes=4, concurrency=50, name="slots")]):
        time.sleep(seconds + 8)
    spans = ledger(dsn, "slots")
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    running_now = peak = 0
    for _, step in events:
        running_now += step
        peak = max(peak, running_now)
    first = spans[0][0]
    steady = [s for s, _ in spans if first + 2 <= s < first + seconds - 2]
    per_s = len(steady) / (seconds - 4)
    return {"max_running": peak, "jobs_per_s": round(per_s, 2), "target_jobs_per_s": 30.0, "jobs": len(spans)}


def fairness(dsn: str) -> dict[str, Any]:
    reset(dsn, NAMESPACE)
    log("fairness: tenant A 100k jobs, then tenant B 100")
    with running([start_workers(dsn, processes=2, concurrency=50, name="fair")]):
        time.sleep(5)
        enqueue(dsn, [("tenant", {"tenant": "A"})] * 100_000)
        b_enqueued = enqueue(dsn, [("tenant", {"tenant": "B"})] * 100)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(ledger_tenant(dsn, "B")) >= 100:
                break
            time.sleep(0.5)
    b_starts = sorted(ledger_tenant(dsn, "B"))
    return {
        "b_jobs_done": len(b_starts),
        "b_last_start_after_enqueue_s": round(b_starts[-1] - b_enqueued, 3) if b_starts else None,
        "a_jobs_done_meanwhile": len(ledger_tenant(dsn, "A")),
    }


def ledger_tenant(dsn: str, tenant: str) -> list[float]:
    """Start times of the finished jobs of ``tenant`` (the handler returns it third)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT (result ->> 0)::float8 FROM {}.results"
                " WHERE task = 'tenant' AND state = 'succeeded' AND result ->> 2 = %s"
            ).format(sql.Identifier(NAMESPACE)),
            (tenant,),
        ).fetchall()
    return [float(r[0]) for r in rows]


def nolimits(base: str, repeat: int, jobs: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"limits": [], "base": []}
    trees = [("limits", str(REPO)), ("base", base)]
    for round_ in range(repeat):
        for label, tree in trees if round_ % 2 else trees[::-1]:  # alternate who goes first
            log(f"nolimits: throughput of {label} ({tree})")
            subprocess.run(
                [sys.executable, "-m", "bench", "throughput", "--jobs", str(jobs)],
                cwd=tree, env={**os.environ, "PYTHONPATH": tree}, check=True,
            )  # fmt: skip
            out = json.loads((Path(tree) / "bench" / "out" / "throughput-latest.json").read_text())
            rates[label].append(float(out["results"][0]["jobs_per_s"]))
    ratio = statistics.median(rates["limits"]) / statistics.median(rates["base"])
    return {"jobs_per_s": rates, "ratio_of_medians": round(ratio, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.limits", description=__doc__)
    parser.add_argument("which", choices=["rate", "concurrency", "fairness", "nolimits", "all"])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--base", help="nolimits: a checkout without the limits code")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=50_000)
    args = parser.parse_args()
    install_signal_cleanup()
    found: dict[str, Any] = {}
    chosen = ["rate", "concurrency", "fairness", "nolimits"] if args.which == "all" else [args.which]
    for which in chosen:
        if which == "rate":
            found["rate"] = rate(args.dsn)
        elif which == "concurrency":
            found["concurrency"] = concurrency(args.dsn)
        elif which == "fairness":
            found["fairness"] = fairness(args.dsn)
        elif which == "nolimits" and args.base:
            found["nolimits"] = nolimits(args.base, args.repeat, args.jobs)
    table = Table(["benchmark", "measured"])
    for name, value in found.items():
        table.add(name, json.dumps(value))
    print(table.markdown())
    write_json("limits", {"machine": machine(), "results": found})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
