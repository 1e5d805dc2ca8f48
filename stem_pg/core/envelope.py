"""Turning an enqueue request into a job row: validation happens here, before any SQL."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from stem_pg.core.durations import MAX_DURATION, MAX_DURATION_TEXT
from stem_pg.core.errors import TaskError
from stem_pg.core.storable import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    MAX_DEPTH,
    MAX_NAME_LENGTH,
    STRICT_JSON,
    check_depth,
    check_encoded,
    check_text,
    encode_storable,
    shown,
)

MAX_TASK_ID_LENGTH = MAX_NAME_LENGTH


@dataclass(slots=True)
class JobSpec:
    """One job, ready to insert. Times are absolute (aware) or seconds from the server's now().

    Not frozen: enqueue_many builds thousands, and frozen dataclasses are slow to build."""

    id: str
    task: str
    queue: str
    priority: int
    args: str
    headers: str
    max_retries: int
    eta: datetime | None
    countdown: float | None
    expires_at: datetime | None
    expires_in: float | None
    visibility_timeout: int | None
    acks_late: bool
    id_given: bool = False
    #: Unique tasks: the key (task, queue, arguments) and how long it may block.
    unique_key: str | None = None
    unique_for: float | None = None

    @property
    def copyable(self) -> bool:
        """True when COPY can insert it: a fresh id (no conflict possible) and no times."""
        return (
            not self.id_given
            and self.unique_key is None
            and self.eta is None
            and self.countdown is None
            and (self.expires_at is None and self.expires_in is None)
        )

    def copy_row(self) -> tuple[object, ...]:
        """The row for ``job_copy``, in its column order."""
        return (
            self.id,
            self.task,
            self.queue,
            self.priority,
            self.args,
            self.headers,
            self.max_retries,
            self.visibility_timeout,
            self.acks_late,
        )

    def params(self) -> dict[str, Any]:
        """Bind parameters for the ``job_enqueue`` query."""
        return {
            "id": self.id,
            "task": self.task,
            "queue": self.queue,
            "priority": self.priority,
            "args": self.args,
            "headers": self.headers,
            "max_retries": self.max_retries,
            "eta": self.eta,
            "countdown": self.countdown,
            "expires_at": self.expires_at,
            "expires_in": self.expires_in,
            "visibility_timeout": self.visibility_timeout,
            "acks_late": self.acks_late,
        }


def unique_key(task: str, queue: str, kwargs: Mapping[str, Any] | None) -> str:
    """The key of a unique task: a SHA-256 of its name, queue and canonical JSON arguments."""
    canonical = json.dumps(
        [task, queue, dict(kwargs or {})], sort_keys=True, separators=(",", ":"), allow_nan=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


# The variant nibble of an RFC 4122 UUID is 8, 9, a or b.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def new_task_id() -> str:
    """A time-ordered (version 7) UUID string: 48 bits of Unix milliseconds, then random bits.

    Ids made close in time sort close together, so a big backlog's inserts into the
    jobs and results primary keys touch a few hot index pages instead of random
    ones. Built without uuid.UUID: enqueue_many makes many.
    """
    h = f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"
    return f"{h[:8]}-{h[8:12]}-7{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def check_task_id(task_id: object, *, what: str = "task_id") -> str:
    """``task_id`` if it is a usable id: non-empty text of at most MAX_TASK_ID_LENGTH characters
    that a text column stores; else TaskError naming ``what``."""
    if not isinstance(task_id, str) or not task_id:
        limit = MAX_TASK_ID_LENGTH
        raise TaskError(
            f"{what} must be a non-empty string of at most {limit} characters, got {shown(task_id)}"
        )
    return check_text(task_id, what=what, max_length=MAX_TASK_ID_LENGTH)


def check_name(name: object, *, what: str) -> str:
    """``name`` (a task name, queue, header key, lock key, topic...) if it is non-empty text of
    at most MAX_NAME_LENGTH characters that a text column stores; else TaskError naming ``what``."""
    if not isinstance(name, str) or not name:
        raise TaskError(f"{what} must be a non-empty string, got {shown(name)}")
    return check_text(name, what=what, max_length=MAX_NAME_LENGTH)


def encode_json(value: object, *, what: str) -> str:
    """Strict JSON that jsonb stores (no NaN, no objects, no NUL character): a clear
    TaskError names the offending ``what`` (see stem_pg.core.storable)."""
    return encode_storable(value, what=what)


def encode_input(value: object, *, what: str, max_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES) -> str:
    """``encode_json`` within the limits of input (headers, workflow params, event payloads):
    at most MAX_DEPTH levels deep and ``max_bytes`` long."""
    return encode_storable(value, what=what, max_bytes=max_bytes, max_depth=MAX_DEPTH)


def encode_kwargs(
    task: str, kwargs: Mapping[str, Any] | None, *, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> str:
    """A job's arguments as JSON; a TaskError names the argument that cannot be stored, is
    nested more than MAX_DEPTH levels deep or is longer than ``max_bytes``."""
    if kwargs is None or (type(kwargs) is dict and not kwargs):
        return "{}"
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise TaskError(f"{task}: kwargs must be a mapping with string keys, got {type(kwargs).__name__}")
    plain = kwargs if type(kwargs) is dict else dict(kwargs)
    try:
        text = STRICT_JSON.encode(plain)
        # Seldom true: check_encoded's own quick tests, inlined for the hot path.
        if (
            len(text) > max_bytes
            or ("\\u" in text and ("\\u0000" in text or "\\ud" in text))  # one pass, mostly
            or text.count("[") + text.count("{") > MAX_DEPTH
        ):
            check_encoded(text, plain, what=f"{task}: kwargs", max_bytes=max_bytes, max_depth=MAX_DEPTH)
    except (TypeError, ValueError, RecursionError, TaskError) as exc:
        _name_the_argument(task, kwargs, max_bytes)
        if isinstance(exc, TaskError):
            raise
        raise TaskError(f"{task}: kwargs must be JSON-serialisable: {exc}") from None
    return text


def _name_the_argument(task: str, kwargs: Mapping[str, Any], max_bytes: int) -> None:
    """Raise the TaskError of the first argument that is not JSON, not storable, too deep or too big."""
    for key, value in kwargs.items():
        what = f"{task}: argument {shown(key)}"
        encode_storable(key, what=f"{task}: argument name {shown(key)}")
        check_depth({key: value}, what=what)  # as deep as it sits inside the kwargs
        encode_storable(value, what=what, max_bytes=max_bytes, max_depth=MAX_DEPTH)


def check_seconds(value: object, *, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise TaskError(f"{what} must be a finite number of seconds >= 0, got {shown(value)}")
    if value > MAX_DURATION:
        raise TaskError(f"{what} {value!r} is longer than the maximum, {MAX_DURATION_TEXT}")
    return float(value)


def check_moment(value: object, *, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TaskError(f"{what} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise TaskError(f"{what} must be timezone-aware (e.g. datetime.now(timezone.utc)), got {value!r}")
    return value


def split_expires(expires: object) -> tuple[datetime | None, float | None]:
    """``expires`` may be a datetime (absolute) or seconds / timedelta (from now)."""
    if isinstance(expires, datetime):
        return check_moment(expires, what="expires"), None
    return None, check_seconds(expires, what="expires")
