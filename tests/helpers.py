"""Test helpers: run a worker in a background thread, wait for conditions."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from stem_pg.client.app import Stem
from stem_pg.worker import Worker, WorkerSettings


@contextmanager
def running_worker(app: Stem, **settings: object) -> Iterator[Worker]:
    """A real Worker on its own event loop thread; stopped gracefully on exit."""
    options: dict[str, object] = {
        "queues": ("default",),
        "poll_interval": 0.2,
        "shutdown_grace": 5.0,
    }
    options.update(settings)
    worker = Worker(app, WorkerSettings(**options))  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        loop.call_soon_threadsafe(worker.request_stop)
        thread.join(timeout=20)
        assert not thread.is_alive(), "worker did not stop"


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
