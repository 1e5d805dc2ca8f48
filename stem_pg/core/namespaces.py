"""Namespace names: validation and the identifiers derived from them.

A namespace is one Postgres schema. Every identifier and NOTIFY channel that
stem_pg derives from it must stay within Postgres' 63-byte limit, so the name
is checked here, once, before any SQL is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stem_pg.core.errors import NamespaceError

DEFAULT_NAMESPACE = "stem"

#: Postgres truncates identifiers (and channel names) longer than this.
IDENTIFIER_LIMIT = 63

#: The longest suffix stem_pg appends to a namespace to name a channel.
LONGEST_SUFFIX = ":control:" + "w" * 6

MAX_NAMESPACE_LENGTH = IDENTIFIER_LIMIT - len(LONGEST_SUFFIX)

_PATTERN = re.compile(r"[a-z][a-z0-9_-]*\Z")


def validate_namespace(name: object, *, source: str = "namespace") -> str:
    """Return ``name`` if it is a usable namespace, else raise NamespaceError.

    Allowed: a lowercase letter followed by lowercase letters, digits, ``_`` or
    ``-``, at most MAX_NAMESPACE_LENGTH bytes. ``source`` names where the value
    came from (an environment variable, a flag) for the error message.
    """
    if not isinstance(name, str):
        raise NamespaceError(f"{source}: namespace must be a string, got {name!r}")
    if not name:
        raise NamespaceError(f"{source}: namespace must not be empty")
    if len(name.encode()) > MAX_NAMESPACE_LENGTH:
        raise NamespaceError(
            f"{source}: namespace {name!r} is {len(name.encode())} bytes long;"
            f" the limit is {MAX_NAMESPACE_LENGTH} so that derived names fit"
            f" Postgres' {IDENTIFIER_LIMIT}-byte identifiers"
        )
    if not _PATTERN.match(name):
        raise NamespaceError(
            f"{source}: namespace {name!r} is not allowed: use a lowercase letter"
            " followed by lowercase letters, digits, '_' or '-' (e.g. 'prod-us-east')"
        )
    if name.startswith("pg_"):
        raise NamespaceError(f"{source}: namespace {name!r} is reserved: Postgres owns pg_* schemas")
    return name


@dataclass(frozen=True)
class Channels:
    """The LISTEN/NOTIFY channel names of one namespace."""

    namespace: str

    @property
    def jobs(self) -> str:
        """Wake-ups for workers; the payload is the queue name."""
        return f"{self.namespace}:jobs"

    @property
    def done(self) -> str:
        """Completion signals for result waiters; the payload is task ids."""
        return f"{self.namespace}:done"

    @property
    def control(self) -> str:
        """Wake-ups for every worker: a command row waits (the payload is ignored)."""
        return f"{self.namespace}:control"

    @property
    def schedules(self) -> str:
        """Schedule edits, for running beats; the payload is the SQL operation."""
        return f"{self.namespace}:schedules"

    @property
    def heartbeats(self) -> str:
        """Every worker's heartbeat, for dashboards and ``stem worker status --follow``; the
        payload is a small JSON object (``core.heartbeats``)."""
        return f"{self.namespace}:heartbeats"

    def worker(self, worker_key: str) -> str:
        """Wake-ups for one worker (payload ignored); ``worker_key`` is at most 6 bytes."""
        return f"{self.namespace}:control:{worker_key.encode()[:6].decode(errors='ignore')}"

    @property
    def broadcasts(self) -> str:
        """Wake-ups for broadcast subscribers; the payload is the broadcast channel name."""
        return f"{self.namespace}:broadcasts"

    def reply(self, request_key: str) -> str:
        """Hints that replies to one command wait in ``control_replies`` (payload ignored);
        ``request_key`` (``core.control.request_key``) is at most 6 bytes."""
        return f"{self.namespace}:reply:{request_key.encode()[:6].decode(errors='ignore')}"
