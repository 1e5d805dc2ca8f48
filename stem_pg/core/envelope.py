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

from stem_pg.core.errors import TaskError
from stem_pg.core.storable import STRICT_JSON, check_encoded, check_text, encode_storable

MAX_TASK_ID_LENGTH = 255


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


def check_task_id(task_id: object) -> str:
    if not isinstance(task_id, str) or not task_id or len(task_id) > MAX_TASK_ID_LENGTH:
        raise TaskError(
            f"task_id must be a non-empty string of at most {MAX_TASK_ID_LENGTH} characters, got {task_id!r}"
        )
    return check_text(task_id, what="task_id")


def encode_json(value: object, *, what: str) -> str:
    """Strict JSON that jsonb stores (no NaN, no objects, no NUL character): a clear
    TaskError names the offending ``what`` (see stem_pg.core.storable)."""
    return encode_storable(value, what=what)


def encode_kwargs(task: str, kwargs: Mapping[str, Any] | None) -> str:
    """A job's arguments as JSON; a TaskError names the argument that cannot be stored."""
    if kwargs is None:
        return "{}"
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise TaskError(f"{task}: kwargs must be a mapping with string keys, got {type(kwargs).__name__}")
    plain = kwargs if type(kwargs) is dict else dict(kwargs)
    try:
        text = STRICT_JSON.encode(plain)
        if "\\u0000" in text or "\\ud" in text:  # seldom: check_encoded's own quick test, inlined
            check_encoded(text, plain, what=f"{task}: kwargs")
    except (TypeError, ValueError, RecursionError, TaskError):
        for key, value in kwargs.items():  # name the argument that is not JSON, or not storable
            encode_storable(key, what=f"{task}: argument name {key!r}")
            encode_storable(value, what=f"{task}: argument {key!r}")
        raise
    return text


def check_seconds(value: object, *, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise TaskError(f"{what} must be a finite number of seconds >= 0, got {value!r}")
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
