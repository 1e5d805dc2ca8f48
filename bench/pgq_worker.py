"""One pgqueuer worker process: what ``pgq run bench.pgq_app:create --batch-size N`` does.

``pgq run`` itself cannot start with pgqueuer 1.6.0 and typer 0.29 (its
``--log-level`` parser hands a str where an enum is expected), so this calls the
same entry point, ``pgqueuer.run`` (the CLI's supervisor), on uvloop like ``pgq run``.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--max-concurrent-tasks", type=int, default=None)
    parser.add_argument("--dequeue-timeout", type=float, default=30.0)
    args = parser.parse_args()

    import pgqueuer
    from pgqueuer.core import logconfig

    logconfig.setup_fancy_logger(logconfig.LogLevel.WARNING)
    coro = pgqueuer.run(
        "bench.pgq_app:create",
        batch_size=args.batch_size,
        max_concurrent_tasks=args.max_concurrent_tasks,
        dequeue_timeout=timedelta(seconds=args.dequeue_timeout),
    )
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


if __name__ == "__main__":
    main()
