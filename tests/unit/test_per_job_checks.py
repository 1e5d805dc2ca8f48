"""What the worker asks of a task before and after every job is answered without
per-job work where the answer cannot change (the raw-SQL ceiling, bench/RESULTS.md:
the worker's own CPU per job is the gap)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from stem_pg.core import storable
from stem_pg.core.errors import TaskError
from stem_pg.core.storable import encode_storable
from stem_pg.core.tasks import TaskDefinition, TaskOptions


def _definition(fn: Any) -> TaskDefinition:
    return TaskDefinition("t", fn, TaskOptions())


async def _no_arguments() -> None:
    return None


async def _optional(n: int = 1, **rest: Any) -> None:
    return None


async def _required(n: int) -> None:
    return None


def test_a_job_without_arguments_is_checked_without_binding_the_signature_each_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []
    bind = inspect.Signature.bind

    def counting(self: inspect.Signature, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return bind(self, *args, **kwargs)

    monkeypatch.setattr(inspect.Signature, "bind", counting)
    for fn in (_no_arguments, _optional):
        definition = _definition(fn)
        calls.clear()
        for _ in range(5):
            assert definition.kwargs_problem(None) is None
            assert definition.kwargs_problem({}) is None
        assert len(calls) <= 1  # once, cached
    definition = _definition(_required)
    problem = definition.kwargs_problem(None)
    assert problem is not None and "'n'" in problem  # still named, every time
    assert definition.kwargs_problem(None, partial=True) is None
    assert definition.kwargs_problem({"n": 1}) is None
    assert definition.kwargs_problem({"m": 1}) is not None


def test_whether_a_handler_is_async_is_asked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = inspect.iscoroutinefunction

    def counting(fn: Any) -> bool:
        calls.append(fn)
        return original(fn)

    monkeypatch.setattr(inspect, "iscoroutinefunction", counting)
    definition = _definition(_no_arguments)
    assert all(definition.is_async for _ in range(5))
    assert len(calls) == 1
    assert not _definition(lambda: None).is_async


def test_a_none_result_is_encoded_without_the_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    class Refusing:
        def encode(self, value: object) -> str:
            raise AssertionError("encoded")

    monkeypatch.setattr(storable, "STRICT_JSON", Refusing())
    assert encode_storable(None, what="result") == "null"
    with pytest.raises(AssertionError):
        encode_storable(1, what="result")
    monkeypatch.undo()
    with pytest.raises(TaskError):
        encode_storable(None, what="arguments", max_bytes=3)  # the limit still counts
