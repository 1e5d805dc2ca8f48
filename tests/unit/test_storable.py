"""What Postgres can store: the validator of JSON values and the escaping of error texts
(tests/integration/test_storable_postgres.py holds the same cases against jsonb)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from stem_pg.core.envelope import check_task_id, encode_input, encode_json, encode_kwargs
from stem_pg.core.errors import ScheduleError, TaskError
from stem_pg.core.schedules import parse_entry
from stem_pg.core.states import TaskState
from stem_pg.core.storable import check_text, encode_storable, storable_text
from stem_pg.db.stores.rows import Finish, Release, RetryLater
from stem_pg.worker.outcomes import storable

#: Values jsonb refuses, and the flaw the error names.
REFUSED: list[tuple[Any, str]] = [
    ("a\x00b", "NUL character at $"),
    ({"items": [0, 1, 2, "nul \x00 here"]}, "NUL character at $.items[3]"),
    ({"a": {"b c": ["ok", {"d": "\x00"}]}}, 'NUL character at $.a["b c"][1].d'),
    ({"k\x00": 1}, 'NUL character in the key at $["k\\u0000"]'),
    ((["\x00"],), "NUL character at $[0][0]"),
    ("\ud800", "unpaired surrogate at $"),
    ("x\udfff", "unpaired surrogate at $"),
    ("\ude00\ud83d", "unpaired surrogate at $"),  # a pair in the wrong order
    ({"\udc80": 1}, 'unpaired surrogate in the key at $["\\udc80"]'),
    ({3: ["a", "b\ud83d"]}, 'unpaired surrogate at $["3"][1]'),
]

#: Values jsonb stores, however close to the refused ones they look.
STORED: list[Any] = [
    "\\u0000",  # a backslash, then "u0000": escaped, no NUL
    "\\\\u0000",
    {"\\u0000": "\\ud800"},
    "\U0001f600",  # an emoji: a surrogate pair in the JSON text
    "\ud83d\ude00",  # the same pair as two code points
    "é中文\u2028",
    "\x01\x1f\x7f",
    {"1": None, "nested": [[[]]], "n": 10**100, "f": 1.5e-7, "t": True},
    "",
]


@pytest.mark.parametrize(("value", "flaw"), REFUSED)
def test_a_value_jsonb_refuses_is_named_with_its_path(value: Any, flaw: str) -> None:
    with pytest.raises(TaskError) as caught:
        encode_storable(value, what="t: return value")
    assert str(caught.value) == f"t: return value is not storable: {flaw}"


@pytest.mark.parametrize("value", STORED)
def test_a_value_jsonb_stores_is_encoded(value: Any) -> None:
    text = encode_storable(value, what="v")
    assert text.isascii()
    assert text == encode_json(value, what="v")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (math.nan, "Out of range float values"),
        ({"x": [math.inf]}, "Out of range float values"),
        (object(), "not JSON serializable"),
        ({1, 2}, "not JSON serializable"),
        ({(1, 2): 3}, "keys must be"),
        ([10**5000], "Exceeds the limit"),
    ],
)
def test_a_value_that_is_no_json_is_refused(value: Any, why: str) -> None:
    with pytest.raises(TaskError, match=f"v must be JSON-serialisable: .*{why}"):
        encode_storable(value, what="v")


def test_circular_and_too_deep_values_are_refused_with_a_task_error() -> None:
    circular: list[Any] = []
    circular.append(circular)
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    for value in (circular, deep):
        with pytest.raises(TaskError, match="v must be JSON-serialisable"):
            encode_storable(value, what="v")


def test_enqueue_arguments_name_the_argument_that_cannot_be_stored() -> None:
    assert encode_kwargs("t", {"a": 1, "b": "é"}) == '{"a":1,"b":"\\u00e9"}'
    with pytest.raises(TaskError, match=r"^t: argument 'b' is not storable: NUL character at \$\.x$"):
        encode_kwargs("t", {"a": 1, "b": {"x": "\x00"}})
    with pytest.raises(TaskError, match=r"^t: argument name 'a\\x00' is not storable: NUL character at \$$"):
        encode_kwargs("t", {"a\x00": 1})
    with pytest.raises(TaskError, match=r"^t: argument 'c' must be JSON-serialisable"):
        encode_kwargs("t", {"c": math.nan})


def test_texts_that_a_text_column_refuses_are_named() -> None:
    assert check_text("fine é", what="task name") == "fine é"
    with pytest.raises(TaskError, match=r"^task_id 'a\\x00' is not storable: NUL character$"):
        check_task_id("a\x00")
    with pytest.raises(TaskError, match=r"^task name '\\ud800' is not storable: unpaired surrogate$"):
        check_text("\ud800", what="task name")


def test_schedule_kwargs_with_a_nul_character_are_refused() -> None:
    body = {"task": "t", "schedule": "every 10s", "kwargs": {"x": ["a\x00"]}}
    with pytest.raises(ScheduleError, match=r"kwargs.*is not storable: NUL character at \$\.x\[0\]"):
        parse_entry("nightly", body)


def test_error_texts_are_escaped_into_storable_text() -> None:
    assert storable_text("plain é \U0001f600") == "plain é \U0001f600"
    assert storable_text("a\x00b\x00") == "a\\x00b\\x00"
    assert (
        storable_text("lone \ud800 and \udc00 pair \ud83d\ude00")
        == "lone \\ud800 and \\udc00 pair \ud83d\ude00"
    )
    storable_text("x\ud800\x00").encode("utf-8")  # no lone surrogate left: encodes


def test_outcomes_carry_storable_error_texts() -> None:
    failed = storable(Finish("j", "tok", TaskState.FAILED, error="ValueError: a\x00", traceback="tb \udc80"))
    assert isinstance(failed, Finish)
    assert (failed.error, failed.traceback) == ("ValueError: a\\x00", "tb \\udc80")
    retry = storable(RetryLater("j", "tok", 1.0, "boom\x00"))
    assert isinstance(retry, RetryLater) and retry.error == "boom\\x00"
    done = Finish("j", "tok", TaskState.SUCCEEDED, result="1")
    assert storable(done) is done
    release = Release("j", "tok")
    assert storable(release) is release


def test_input_has_limits_what_a_worker_writes_has_not() -> None:
    """Arguments, headers and params are input: nested at most 100 levels and at most
    max_payload_bytes long. A return value, a step result or progress is the task's own
    output: only what Postgres cannot store is refused."""
    deep: list[Any] = []
    for _ in range(150):
        deep = [deep]
    big = "x" * (2 * 1024 * 1024)
    assert encode_json(deep, what="result").startswith("[[[")
    assert len(encode_json(big, what="result")) == len(big) + 2
    with pytest.raises(TaskError, match=r"^params is nested more than 100 levels deep$"):
        encode_input(deep, what="params")
    with pytest.raises(TaskError, match=r"^params is 2097154 bytes of JSON; the limit is 1048576"):
        encode_input(big, what="params")
    with pytest.raises(TaskError, match=r"^t: argument 'a' is nested more than 100 levels deep$"):
        encode_kwargs("t", {"a": deep})
