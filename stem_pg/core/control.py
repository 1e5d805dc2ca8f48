"""The control plane's vocabulary: commands, replies, their JSON form, fan-out states.

Pure: the client (``stem_pg.client.control``) and the worker (``stem_pg.worker.control``)
speak through these types. A command travels as a row of ``control_commands`` and a
reply as a row of ``control_replies``; a NOTIFY only wakes the reader up (its payload
is ignored), because anyone who can connect can NOTIFY but only those granted INSERT
can write a command.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from stem_pg.core.errors import StemError

#: Postgres refuses NOTIFY payloads of 8000 bytes or more; stay clear of the edge.
NOTIFY_LIMIT = 7900

COMMANDS = ("ping", "stats", "inspect", "shutdown", "pause", "resume", "revoke")
ShutdownMode = Literal["warm", "soft", "hard"]
#: Seconds a control command waits for replies unless told otherwise.
DEFAULT_TIMEOUT = 5.0
SHUTDOWN_MODES: tuple[ShutdownMode, ...] = ("warm", "soft", "hard")

DELIVERY_MODES = ("at-least-once", "at-most-once")
#: Broadcast fan-out row states (mirrored by a CHECK constraint); the first three are unfinished.
FANOUT_STATES = ("pending", "running", "delivered", "succeeded", "failed", "cancelled")


class ControlError(StemError):
    """A control command or reply is malformed."""


def worker_key(worker_id: str) -> str:
    """The 6-character key of a worker's own control channel (``Channels.worker``).

    A hash, so any worker id fits the channel-name limit; two workers sharing a
    key both hear the command, and the ``targets`` list sorts it out.
    """
    return hashlib.blake2b(worker_id.encode(), digest_size=3).hexdigest()


def request_key(request_id: str) -> str:
    """The 6-character key of the channel that hints a client about replies to ``request_id``.

    Derived from the command row, never chosen by a payload: workers write every reply
    to ``control_replies`` and only say "look" on ``Channels.reply(request_key(id))``.
    """
    return worker_key(request_id)


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Command:
    """One control command: a row of ``control_commands`` (``encode`` is its JSON form).

    ``targets`` empty means every worker of the namespace; ``reply`` is the
    channel that hints the asker of a reply (None: fire and forget); workers derive it
    from ``id`` (``request_key``), never take it from anyone.
    """

    command: str
    id: str = field(default_factory=new_request_id)
    args: dict[str, Any] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    reply: str | None = None

    def __post_init__(self) -> None:
        if self.command not in COMMANDS:
            raise ControlError(f"unknown control command {self.command!r}; known: {', '.join(COMMANDS)}")

    def addressed_to(self, worker_id: str) -> bool:
        return not self.targets or worker_id in self.targets

    def encode(self) -> str:
        """The command as compact JSON; ControlError if it is larger than a NOTIFY payload
        (commands are kept that small: a revoke lists the ids workers may report on)."""
        body = {"cmd": self.command, "id": self.id, "args": self.args, "to": list(self.targets)}
        if self.reply is not None:
            body["reply"] = self.reply
        text = json.dumps(body, separators=(",", ":"))
        if len(text.encode()) > NOTIFY_LIMIT:
            raise ControlError(
                f"control command {self.command!r} is too large for NOTIFY ({len(text)} bytes)"
            )
        return text


@dataclass(frozen=True)
class Reply:
    """A worker's answer to one command (a row of ``control_replies``, read back by the asker)."""

    request_id: str
    worker_id: str
    ok: bool = True
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


#: ``durability`` values (routing file, ``broadcasts:``) that make a channel durable: a
#: worker subscribing later receives the messages still stored instead of starting empty.
DURABLE_VALUES = frozenset({"durable", "persistent"})


def is_durable(durability: str | None) -> bool:
    return (durability or "").strip().lower() in DURABLE_VALUES
