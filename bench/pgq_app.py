"""The pgqueuer application the comparator workers run (``pgq run bench.pgq_app:create``).

Handlers mirror ``bench.stem_app``: ``noop`` counts handler starts, ``burn`` spends 1 ms of
CPU in a thread, ``lat`` sends
a latency sample (the payload is the time.time() taken just before enqueue).
``BENCH_PGQ_DRIVER`` picks the connection: ``apg`` (one asyncpg connection, what
``pgq`` uses by default), ``apgpool`` (an asyncpg pool) or ``psy`` (psycopg).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pgqueuer import PgQueuer
from pgqueuer.models import Job

from bench.common import DEFAULT_PGQ_DSN, PROBE, spend_cpu

DSN = os.environ.get("BENCH_PGQ_DSN", DEFAULT_PGQ_DSN)
DRIVER = os.environ.get("BENCH_PGQ_DRIVER", "apg")
#: The payload handler decodes its JSON (``json.loads``), as stem_pg's worker does for every
#: job's arguments and as a real handler must: ``python -m bench payload`` sets it unless
#: ``--pgq-decode no`` (the comparison before 2026-12-02, which dropped the bytes undecoded).
DECODE = os.environ.get("BENCH_PGQ_DECODE") == "1"


def register(pgq: PgQueuer) -> PgQueuer:
    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        PROBE.started()

    @pgq.entrypoint("burn")
    async def burn(job: Job) -> None:
        """bench.stem_app's ``burn``: 1 ms of CPU in a thread (pgqueuer runs async handlers only)."""
        PROBE.started()
        await asyncio.to_thread(spend_cpu, 1.0)

    @pgq.entrypoint("lat")
    async def lat(job: Job) -> None:
        PROBE.latency(float(job.payload or b"0"))

    @pgq.entrypoint("payload")
    async def payload(job: Job) -> None:
        if DECODE:
            json.loads(job.payload or b"null")
        PROBE.started()

    return pgq


@asynccontextmanager
async def create() -> AsyncIterator[PgQueuer]:
    if DRIVER == "apg":
        import asyncpg

        conn = await asyncpg.connect(dsn=DSN)
        try:
            yield register(PgQueuer.from_asyncpg_connection(conn))
        finally:
            await conn.close()
    elif DRIVER == "apgpool":
        import asyncpg

        async with asyncpg.create_pool(dsn=DSN, min_size=2, max_size=10) as pool:
            yield register(PgQueuer.from_asyncpg_pool(pool))
    elif DRIVER == "psy":
        import psycopg

        async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as aconn:
            yield register(PgQueuer.from_psycopg_connection(aconn))
    else:
        raise ValueError(f"BENCH_PGQ_DRIVER: unknown driver {DRIVER!r}")
