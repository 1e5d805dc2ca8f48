"""A supervisor stand-in for tests/acceptance/test_worker_lifeline.py: it makes a Lifeline, forks
one child and waits to be killed. The child reports, as files in DIR, its pid (``ready``) and
how it learnt that the parent died (``gone``).

``python -m tests.acceptance.lifeline_probe MODE DIR``, MODE one of:

* ``pipe``: the child ignores SIGTERM, so only the pipe's EOF can tell it;
* ``signal``: the child does not watch the pipe, so only the parent-death signal can tell it;
* ``late``: the child attaches only once the parent is gone (the race the getppid check covers).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from stem_pg.worker.lifeline import Lifeline


def child(lifeline: Lifeline, mode: str, out: Path) -> None:
    if mode == "late":
        (out / "ready").write_text(str(os.getpid()))
        while not lifeline.parent_gone():
            time.sleep(0.01)
        (out / "gone").write_text("attach says gone" if not lifeline.attach() else "attach missed it")
        return
    if mode == "pipe":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        attached = lifeline.attach()
    else:
        signal.signal(signal.SIGTERM, lambda *_: (out / "gone").write_text("signal"))
        attached = lifeline.attach()
    assert attached

    async def main() -> None:
        gone = asyncio.Event()
        if mode == "pipe":
            lifeline.watch(asyncio.get_running_loop(), gone.set)
        (out / "ready").write_text(str(os.getpid()))
        if mode == "pipe":
            await gone.wait()
            (out / "gone").write_text("pipe")
        else:
            while not (out / "gone").exists():
                await asyncio.sleep(0.01)

    asyncio.run(main())


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    lifeline = Lifeline()
    if os.fork() == 0:
        try:
            child(lifeline, mode, out)
        finally:
            os._exit(0)
    while True:
        time.sleep(1)
