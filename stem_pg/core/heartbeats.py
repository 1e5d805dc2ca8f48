"""The heartbeat topic's payload: what a worker says about itself on each beat (pure).

Every worker NOTIFYs ``Channels(namespace).heartbeats`` (``<namespace>:heartbeats``) when it
registers, on every heartbeat (at least every 10 s) and when it stops, in the same statement
that updates its ``workers`` row. The payload is one JSON object, at most ``PAYLOAD_LIMIT``
bytes (NOTIFY's own limit is 8000 bytes)::

    {"worker": "web-1.4242.a1b2c3", "status": "alive", "host": "web-1", "pid": 4242,
     "concurrency": 10, "inflight": 3, "processed": 1520, "failed": 4, "uptime": 7512.3}

``status`` is ``alive`` or ``stopped``; ``processed`` counts the jobs that ended (succeeded,
failed or cancelled) since the worker started, ``failed`` those that failed for good;
``uptime`` is in seconds. A listener decodes it with ``decode`` (``None`` for a payload it
does not understand); the notification is a live hint, the ``workers`` table the record: a
listener that hears nothing reads the table (``stem_pg.db.heartbeats``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

#: The most bytes a payload takes (names cut to NAME_LIMIT characters, 6 bytes each at worst
#: once escaped): half NOTIFY's 8000, whatever the worker is called.
PAYLOAD_LIMIT = 4096
#: Worker ids and host names are cut to this many characters in the payload (never in the table).
NAME_LIMIT = 200

Status = Literal["alive", "stopped"]
_STATUSES = ("alive", "stopped")
_COUNTS = ("pid", "concurrency", "inflight", "processed", "failed")


@dataclass(frozen=True)
class Beat:
    """One worker's heartbeat as the topic carries it."""

    worker: str
    status: Status
    host: str
    pid: int
    concurrency: int
    inflight: int
    processed: int
    failed: int
    uptime: float


def encode(beat: Beat) -> str:
    """The NOTIFY payload of ``beat``: compact JSON, at most PAYLOAD_LIMIT bytes."""
    fields = asdict(beat)
    fields["worker"] = beat.worker[:NAME_LIMIT]
    fields["host"] = beat.host[:NAME_LIMIT]
    fields["uptime"] = round(beat.uptime, 1)
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


def decode(payload: str) -> Beat | None:
    """The beat a payload carries, or None when it is not one (another version, a stray NOTIFY).
    Fields it does not know are ignored, so newer workers can add some."""
    try:
        data: Any = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    worker, status, host, uptime = (data.get(k) for k in ("worker", "status", "host", "uptime"))
    counts = [data.get(k) for k in _COUNTS]
    if not (isinstance(worker, str) and status in _STATUSES and isinstance(host, str)):
        return None
    whole = [c for c in counts if isinstance(c, int) and not isinstance(c, bool)]
    if len(whole) != len(_COUNTS) or not isinstance(uptime, int | float) or isinstance(uptime, bool):
        return None
    pid, concurrency, inflight, processed, failed = whole
    return Beat(worker, status, host, pid, concurrency, inflight, processed, failed, float(uptime))
