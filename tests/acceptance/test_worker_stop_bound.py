"""A worker's way out is bounded: a task that swallows every cancel does not keep the process
alive, and a SIGTERM at any moment of start-up (under CPU load) ends the worker within its
grace plus a margin, leaving no worker registered as running."""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.acceptance.stubbornapp import TASK_NAME
from tests.acceptance.workerapp import Workers, scalar, wait_registered
from tests.helpers import wait_for

GRACE = 1.0
#: The claim loop's wait, the loops' bound, the stragglers' bound and a loaded machine's slack.
MARGIN = 12.0


@pytest.mark.timeout(60)
def test_a_task_that_swallows_every_cancel_does_not_keep_the_worker(
    workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    proc = workers.start(app="tests.acceptance.stubbornapp:app", extra=["--shutdown-grace", str(GRACE)])
    wait_registered(db, namespace, {proc.pid})
    wait_for(lambda: "consuming" in proc.log(), 10, "the worker to start its loops")

    proc.signal(signal.SIGTERM)
    sent = time.monotonic()
    code = proc.wait(timeout=GRACE + MARGIN)
    assert time.monotonic() - sent < GRACE + MARGIN
    assert code == 0, proc.log()
    log = proc.log(None)
    assert f"{TASK_NAME} still running 2 s after being cancelled" in log, log
    assert "stopped" in log
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.workers WHERE stopped_at IS NULL") == 0


@contextlib.contextmanager
def cpu_load(processes: int = 2) -> Iterator[None]:
    """Busy loops in other processes for the duration (killed by pid afterwards)."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigterm_at_random_moments_of_start_up_under_load_always_ends_the_worker(
    workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    rng = random.Random(20)
    slow: list[tuple[int, float, float]] = []
    with cpu_load():
        for round_ in range(30):
            delay = rng.uniform(0.0, 2.0)
            proc = workers.start(extra=["--shutdown-grace", str(GRACE)], real_process=round_ % 5 == 0)
            time.sleep(delay)
            proc.signal(signal.SIGTERM)
            sent = time.monotonic()
            try:
                code = proc.wait(timeout=GRACE + MARGIN)
            except subprocess.TimeoutExpired:
                pytest.fail(f"round {round_}: SIGTERM {delay:.2f} s after start, still running\n{proc.log()}")
            took = time.monotonic() - sent
            # Killed outright before the worker set its handler (it held nothing then), else 0.
            assert code in (0, -signal.SIGTERM), f"round {round_}: exit {code}\n{proc.log()}"
            if took > GRACE:
                slow.append((round_, delay, took))
            live = scalar(db, namespace, "SELECT count(*) FROM {ns}.workers WHERE stopped_at IS NULL")
            assert live == 0, f"round {round_}: a worker left registered as running\n{proc.log()}"
    print(f"rounds slower than the grace ({GRACE} s): {slow}")
