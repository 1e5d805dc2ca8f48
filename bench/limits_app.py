"""The application of ``python -m bench.limits`` (``--app bench.limits_app:app``).

Each handler returns when it started and ended (``time.time()``): the results table is
the ledger the benchmark reads.
"""

from __future__ import annotations

import asyncio
import os
import time

from bench.common import DEFAULT_DSN
from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig

DSN = os.environ.get("BENCH_DSN", DEFAULT_DSN)
NAMESPACE = os.environ.get("BENCH_NAMESPACE", "bench_limits")
JOB_SECONDS = 0.1

app = Stem(DSN, namespace=NAMESPACE, config=StemConfig())


@app.task(name="rated", rate_limit="200/s")
async def rated() -> list[float]:
    now = time.time()
    return [now, now]


@app.task(name="slots", concurrency_limit=3)
async def slots() -> list[float]:
    start = time.time()
    await asyncio.sleep(JOB_SECONDS)
    return [start, time.time()]


@app.task(name="tenant", concurrency_limit=50, concurrency_key="{tenant}")
async def tenant(tenant: str) -> list[float | str]:
    start = time.time()
    await asyncio.sleep(0.005)
    return [start, time.time(), tenant]
