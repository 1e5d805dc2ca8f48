"""The stem_pg application the benchmark workers run (``--app bench.stem_app:app``).

Every handler tells the harness it started through ``bench.common.PROBE``.
"""

from __future__ import annotations

import os
import time

from bench.common import DEFAULT_DSN, PROBE, bench_signing, spend_cpu
from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig

DSN = os.environ.get("BENCH_DSN", DEFAULT_DSN)
NAMESPACE = os.environ.get("BENCH_NAMESPACE", "bench")

app = Stem(DSN, namespace=NAMESPACE, config=StemConfig(), signing=bench_signing())

if os.environ.get("BENCH_TRACING") == "1":  # the cost of tracing every run (stem_pg.tracing)
    from bench.tracing_sink import instrument_with_sdk

    instrument_with_sdk(app)

TRACED = os.environ.get("BENCH_WAKE_TRACE") == "1"
if TRACED:  # python -m bench.wakeup trace: the wake-up path stamped
    from bench import wakeup

    wakeup.instrument()


@app.task(name="noop")
async def noop() -> None:
    """The throughput task: does nothing; its (null) result is stored, as by default."""
    PROBE.started()


@app.task(name="noop_ignore", ignore_result=True)
async def noop_ignore() -> None:
    """Same, with ignore_result=True: a success writes no results row."""
    PROBE.started()


@app.task(name="lat")
async def lat(t: float) -> None:
    """The latency task: ``t`` is the time.time() taken just before enqueue."""
    if TRACED:
        wakeup.report(t)
    else:
        PROBE.latency(t)


@app.task(name="payload")
async def payload(blob: str) -> None:
    """The large-payload task (``python -m bench payload``): its argument is decoded, then dropped."""
    PROBE.started()


@app.task(name="sync_sleep")
def sync_sleep(ms: float = 10.0) -> None:
    """A blocking handler (runs in the worker's thread pool): fills every slot, for RSS."""
    time.sleep(ms / 1000)


@app.task(name="burn")
def burn(ms: float = 1.0) -> None:
    """The CPU-bound task: a blocking handler that spends ``ms`` of its thread's CPU time."""
    PROBE.started()
    spend_cpu(ms)
