"""The revoked task ids a worker knows of, kept in step with the ``revokes`` table by version."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from stem_pg.db.stores.control import RevokeRow

log = logging.getLogger(__name__)

#: The most task ids one "revokes applied" line names.
LOGGED_IDS = 10


class RevokeSet:
    """Revoked ids with their reason and expiry; ``version`` is the newest revoke applied.

    Revoke writers serialise on an advisory lock, so versions commit in order and
    "everything newer than ``version``" is all a worker needs to catch up, after
    a restart or a lost notification alike.
    """

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.version = 0
        self._now = now
        self._rows: dict[str, RevokeRow] = {}

    def apply(self, rows: Iterable[RevokeRow]) -> list[RevokeRow]:
        """Record ``rows``; returns the ones that were new."""
        fresh = []
        for row in rows:
            if row.version <= self.version and row.task_id in self._rows:
                continue
            self.version = max(self.version, row.version)
            known = self._rows.get(row.task_id)
            merged = row if known is None else _merge(known, row)
            self._rows[row.task_id] = merged
            fresh.append(merged)
        return fresh

    def reason(self, task_id: str) -> str | None:
        """The cancellation message for a revoked id, or None if it may run."""
        row = self._rows.get(task_id)
        if row is None:
            return None
        if row.expires_at <= self._now():
            del self._rows[task_id]
            return None
        return describe(row)

    def ids(self) -> list[str]:
        self.drop_expired()
        return sorted(self._rows)

    def drop_expired(self) -> int:
        now = self._now()
        expired = [task_id for task_id, row in self._rows.items() if row.expires_at <= now]
        for task_id in expired:
            del self._rows[task_id]
        return len(expired)

    def __len__(self) -> int:
        return len(self._rows)


def log_revokes(worker_id: str, rows: Sequence[RevokeRow]) -> None:
    """One INFO line for the revokes a worker just learned of (at start-up: all current ones)."""
    ids = [row.task_id for row in rows]
    more = f" and {len(ids) - LOGGED_IDS} more" if len(ids) > LOGGED_IDS else ""
    log.info(
        "worker %s: %d revoke%s applied: %s%s",
        worker_id,
        len(ids),
        "" if len(ids) == 1 else "s",
        ", ".join(
            f"{row.task_id} ({describe(row)}{', terminate' if row.terminate else ''})"
            for row in rows[:LOGGED_IDS]
        ),
        more,
        extra={"event": "revoke", "ids": ids[:LOGGED_IDS], "count": len(ids)},
    )


def describe(row: RevokeRow) -> str:
    return f"revoked: {row.reason}" if row.reason else "revoked"


def _merge(old: RevokeRow, new: RevokeRow) -> RevokeRow:
    """A second revoke of one id: newest reason, terminate if either asked, latest expiry."""
    return RevokeRow(
        version=max(old.version, new.version),
        task_id=new.task_id,
        reason=new.reason or old.reason,
        terminate=old.terminate or new.terminate,
        expires_at=max(old.expires_at, new.expires_at),
    )
