"""A forked worker's tie to its supervisor: when the supervisor dies (a SIGKILL, an OOM kill),
its children stop the way a SIGTERM stops them, instead of claiming on as orphans.

Two ways to notice, either one enough. On Linux the kernel sends the parent-death signal
(``prctl(PR_SET_PDEATHSIG, SIGTERM)``). Everywhere, the read end of a pipe whose only write
end the supervisor holds reads EOF once the supervisor is gone (each child closes its copy of
the write end right after the fork, so no sibling keeps the pipe open).

The parent-death signal goes with the *thread* that forked, so the supervisor forks from its
main thread only; and a supervisor that died before the child set the signal sends none, so the
child compares ``os.getppid()`` with the supervisor's pid once the signal is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable

#: linux/prctl.h
PR_SET_PDEATHSIG = 1


class Lifeline:
    """Made by the supervisor before it forks; ``attach()`` in each child, ``close()`` at the end."""

    def __init__(self) -> None:
        self.parent = os.getpid()
        self._read, self._write = os.pipe()

    def attach(self) -> bool:
        """In a freshly forked child: arm the death signal and drop the write end. False when
        the supervisor is already gone (then no signal will come and the child should leave)."""
        with contextlib.suppress(OSError):
            os.close(self._write)
        set_death_signal(signal.SIGTERM)
        return not self.parent_gone()

    def parent_gone(self) -> bool:
        """Whether the supervisor died (the child was handed to another parent)."""
        return os.getppid() != self.parent

    def watch(self, loop: asyncio.AbstractEventLoop, on_gone: Callable[[], None]) -> None:
        """Call ``on_gone`` in ``loop`` once the pipe reads EOF (the supervisor is gone)."""

        def readable() -> None:
            try:
                data = os.read(self._read, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(self._read)
                on_gone()

        loop.add_reader(self._read, readable)

    def close(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


def set_death_signal(signum: int) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False
