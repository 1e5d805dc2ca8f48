"""When a worker process retires: the task count and memory checks of ``Recycler``, and
the settings that enable them."""

from __future__ import annotations

import pytest

from stem_pg.core.errors import ConfigError
from stem_pg.worker.recycle import Recycler, resident_kib
from stem_pg.worker.settings import WorkerSettings


def test_the_task_that_reaches_the_limit_retires_the_process_once() -> None:
    reasons: list[str] = []
    recycler = Recycler(max_tasks=3, max_memory_kib=None, retire=reasons.append)
    for _ in range(5):
        recycler.task_started()
        recycler.task_ended()
    assert reasons == ["it started 3 tasks (--max-tasks-per-child)"]


def test_memory_above_the_limit_after_a_task_retires_the_process() -> None:
    reasons: list[str] = []
    Recycler(max_tasks=None, max_memory_kib=resident_kib() * 4, retire=reasons.append).task_ended()
    assert reasons == []
    Recycler(max_tasks=None, max_memory_kib=1, retire=reasons.append).task_ended()
    assert len(reasons) == 1 and "over --max-memory-per-child 1" in reasons[0]


def test_resident_memory_is_plausible() -> None:
    assert 1024 < resident_kib() < 64 * 1024 * 1024


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "10"])
@pytest.mark.parametrize("field", ["max_tasks_per_child", "max_memory_per_child"])
def test_recycling_limits_must_be_positive_integers(field: str, value: object) -> None:
    flag = "--" + field.replace("_", "-")
    with pytest.raises(ConfigError, match=f"^{flag} must be a whole number of at least 1"):
        WorkerSettings(queues=("default",), **{field: value})  # type: ignore[arg-type]
    assert getattr(WorkerSettings(queues=("default",), **{field: 7}), field) == 7  # type: ignore[arg-type]
