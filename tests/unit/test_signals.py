"""The signal registry and the middleware chain (stem_pg.core.signals), without a database."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from stem_pg.core.signals import CallNext, Signal, Signals, TaskInfo, check_middleware, run_chain

INFO = TaskInfo("t", "id-1", "default", 1, "w1")


def test_a_signal_without_receivers_is_false_and_connect_is_idempotent() -> None:
    signal: Signal[int] = Signal("numbers")
    assert not signal
    seen: list[int] = []
    signal.connect(seen.append)
    signal.connect(seen.append)
    assert signal
    signal.send(1)
    signal.disconnect(seen.append)
    signal.send(2)
    assert seen == [1] and not signal


def test_send_from_sync_code_runs_async_receivers_to_their_end(caplog: pytest.LogCaptureFixture) -> None:
    signal: Signal[int] = Signal("numbers")
    seen: list[int] = []

    async def later(n: int) -> None:
        await asyncio.sleep(0)
        seen.append(n)

    async def broken(n: int) -> None:
        raise ValueError(f"no {n}")

    signal.connect(later)
    signal.connect(broken)
    with caplog.at_level(logging.ERROR):
        signal.send(7)
    assert seen == [7]
    assert [r.getMessage() for r in caplog.records] == [
        f"signal numbers: receiver {__name__}.{broken.__qualname__} failed: ValueError: no 7"
    ]


def test_middleware_runs_first_registered_outermost() -> None:
    order: list[str] = []

    def named(name: str) -> Any:
        async def mw(ctx: TaskInfo, call_next: CallNext) -> Any:
            order.append(f"{name} in")
            value = await call_next()
            order.append(f"{name} out")
            return value

        return check_middleware(mw)

    async def handler() -> int:
        order.append("handler")
        return 1

    assert asyncio.run(run_chain([named("a"), named("b")], INFO, handler)) == 1
    assert order == ["a in", "b in", "handler", "b out", "a out"]


def test_signals_by_name() -> None:
    signals = Signals()
    assert signals["task_failed"] is signals.task_failed
    with pytest.raises(KeyError, match="no signal 'names'"):
        signals["names"]
    assert "control_command_received" in signals.names()
