"""Delayed jobs in the table: drain the due part of a backlog of which a share is scheduled later.

A backlog of ``--jobs`` no-ops of which ``--share`` is scheduled an hour ahead
(``countdown=3600``), enqueued before the due ones (``first``) or interleaved
with them (``mixed``), then one worker command drains the due ones. The rate is
measured as ``throughput`` measures it (handler starts, first to last) and
compared with the steady rate: the same number of due jobs and nothing delayed.
No ANALYZE before a drain. ``--repeat N`` interleaves N rounds of the three.

    python -m bench.delayed --jobs 200000 --share 0.5 --repeat 2
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench import common
from bench.bench_stem import (
    BEST_CONCURRENCY,
    BEST_PREFETCH,
    BEST_PROCESSES,
    make_app,
    reset,
    start_worker,
)
from bench.common import (
    DEFAULT_DSN,
    Collector,
    Table,
    install_signal_cleanup,
    log,
    measure_drain,
    ratio,
    running,
    stop_all,
    write_json,
)
from bench.enqueue_loop import admin_dsn

BATCH = 5000


def _enqueue(dsn: str, namespace: str, due: int, delayed: int, order: str) -> float:
    from stem_pg.client.app import EnqueueRequest

    now, later = EnqueueRequest("noop"), EnqueueRequest("noop", countdown=3600)
    app = make_app(dsn, namespace)
    start = time.perf_counter()
    try:
        if order == "first":
            batches = [later] * delayed + [now] * due
        else:  # mixed: due and delayed jobs alternate in enqueue order
            batches = []
            for i in range(due + delayed):
                batches.append(
                    later if i * delayed // (due + delayed) != (i + 1) * delayed // (due + delayed) else now
                )
        for i in range(0, len(batches), BATCH):
            app.enqueue_many(batches[i : i + BATCH])
    finally:
        app.close()
    return time.perf_counter() - start


def drain(
    dsn: str,
    namespace: str,
    *,
    due: int,
    delayed: int,
    order: str,
    processes: int,
    concurrency: int,
    prefetch: int,
) -> dict[str, Any]:
    label = f"stem_pg due={due:,} delayed={delayed:,} ({order})"
    log(f"{label}: reset + enqueue")
    reset(dsn, namespace)
    enqueue_s = _enqueue(dsn, namespace, due, delayed, order)
    with Collector() as collector:
        proc = start_worker(
            dsn,
            namespace,
            processes=processes,
            concurrency=concurrency,
            prefetch=prefetch,
            probe_path=collector.path,
            name="stem-delayed",
        )
        with running([proc]):
            result = measure_drain(collector, [proc], due, max(120.0, due / 500), label, dsn)
    log(f"{label}: {result['jobs_per_s']:,.0f} jobs/s")
    return {"due": due, "delayed": delayed, "order": order, "enqueue_seconds": enqueue_s, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delayed", description=__doc__)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--namespace", default="bench")
    parser.add_argument("--jobs", type=int, default=200_000, help="backlog size, delayed and due")
    parser.add_argument(
        "--share", type=float, default=0.5, help="share of the backlog scheduled an hour ahead"
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--orders", nargs="+", default=["first", "mixed"], choices=["first", "mixed"])
    parser.add_argument("--processes", type=int, default=BEST_PROCESSES)
    parser.add_argument("--concurrency", type=int, default=BEST_CONCURRENCY)
    parser.add_argument("--prefetch", type=int, default=BEST_PREFETCH)
    args = parser.parse_args(argv)
    install_signal_cleanup()
    # Another server (a scratch cluster on tmpfs: claims' fsyncs out of the way, so the
    # claim's own cost decides the rate): create the database there.
    common.ensure_database.__defaults__ = (admin_dsn(args.dsn),)
    delayed = int(args.jobs * args.share)
    due = args.jobs - delayed
    opts = {"processes": args.processes, "concurrency": args.concurrency, "prefetch": args.prefetch}
    rows: list[dict[str, Any]] = []
    try:
        for _ in range(args.repeat):
            steady = drain(args.dsn, args.namespace, due=due, delayed=0, order="none", **opts)
            rows.append(steady)
            for order in args.orders:
                row = drain(args.dsn, args.namespace, due=due, delayed=delayed, order=order, **opts)
                row["vs_steady"] = ratio(row["jobs_per_s"], steady["jobs_per_s"])
                rows.append(row)
    finally:
        stop_all()
    table = Table(["due", "delayed", "order", "jobs/s", "vs steady (same round)"])
    for row in rows:
        table.add(row["due"], row["delayed"], row["order"], row["jobs_per_s"], row.get("vs_steady"))
    print(table.markdown())
    write_json("delayed", {"results": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
