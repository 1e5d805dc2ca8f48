"""When the maintenance pass vacuums the jobs table: once dead rows pile up, but not while
the xmin horizon keeps them (a VACUUM then removes nothing and only burns I/O), and whom to
name to the operator when that happens.

VACUUM removes a dead row only when no snapshot still open can see it: the oldest snapshot
or transaction id of a session of this database, of a replication slot (its ``xmin``; a
slot's ``catalog_xmin`` holds back only catalog tables) or of a prepared transaction is the
horizon. Rows deleted after it stay, and ``n_dead_tup`` stays high however often we
vacuum. So once a vacuum ran under a horizon that has not moved since, another one would
remove nothing new: the policy waits for the horizon to move, and says who holds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The jobs table is vacuumed once its dead rows reach this many plus VACUUM_SCALE x its live rows.
VACUUM_BASE = 20_000
VACUUM_SCALE = 0.1
#: A vacuum that removed less than this share of the dead rows it found was held back by
#: something we could not see: the next one waits for as many new dead rows as the threshold.
LITTLE = 0.1
#: A holder is named to the operator once its transaction has been open this long (seconds):
#: a statement of a few seconds (a large enqueue_many) holds the horizon too, harmlessly.
WARN_AFTER = 60.0


@dataclass(frozen=True)
class DeadRows:
    """The jobs table's statistics (lagging by about a second)."""

    dead: int
    live: int
    #: Ours to vacuum now: our role owns the table and no vacuum of it is under way.
    may_vacuum: bool
    #: When the table was last vacuumed, by any worker or autovacuum (epoch seconds, server clock).
    last_vacuum: float | None


@dataclass(frozen=True)
class HorizonHolder:
    """The oldest transaction id or snapshot that keeps dead rows from being removed."""

    kind: str  # "session", "slot" (a replication slot) or "prepared" (a prepared transaction)
    xmin: int  # the transaction id it holds the horizon at
    xmin_age: int  # transactions started since
    pid: int | None = None  # sessions
    name: str | None = None  # the slot's name, the prepared transaction's gid
    application_name: str | None = None
    state: str | None = None  # pg_stat_activity.state (None: not visible to our role)
    age: float | None = None  # seconds its transaction has been open (None: unknown)
    #: A time (epoch seconds, server clock) by which it certainly held this horizon, None: unknown.
    since: float | None = None
    user_name: str | None = None  # the session's role, the prepared transaction's owner
    query: str | None = None  # the start of a session's current or last statement, unredacted

    @property
    def key(self) -> tuple[str, str, int]:
        """Who, and at which horizon: the same session pinning again later is a new event."""
        return (self.kind, str(self.pid if self.pid is not None else self.name), self.xmin)

    def describe(self) -> str:
        """Who holds it, in an operator's words."""
        age = "unknown" if self.age is None else duration_text(self.age)
        old = f"{self.xmin_age:,} transactions old"
        if self.kind == "slot":
            return f"replication slot {self.name!r} ({self.state or 'state unknown'}, xmin {old})"
        if self.kind == "prepared":
            return f"prepared transaction {self.name!r} (prepared {age} ago, {old})"
        return (
            f"session pid {self.pid} (application_name {self.application_name or ''!r},"
            f" state {self.state or 'unknown'!r}, transaction open for {age}, {old})"
        )

    def remedy(self) -> str:
        if self.kind == "slot":
            return f"drop the slot if nothing consumes it: SELECT pg_drop_replication_slot({self.name!r})"
        if self.kind == "prepared":
            return f"finish it: COMMIT PREPARED {self.name!r} or ROLLBACK PREPARED {self.name!r}"
        return f"end its transaction, or SELECT pg_terminate_backend({self.pid})"


@dataclass(frozen=True)
class VacuumDecision:
    vacuum: bool
    reason: str
    #: A line for the operator, once per holder of the horizon (None: nothing new to say).
    warning: str | None = None


@dataclass(frozen=True)
class _LastVacuum:
    horizon: int | None  # the holder's xmin when it ran (None: no other snapshot was open)
    dead_before: int
    left: int  # dead rows it could not remove (as the statistics said right after)


@dataclass
class VacuumPolicy:
    """One worker's memory of its vacuums, and the rule; no IO. ``due`` first (cheap), then
    ``decide`` with the horizon's holder, then ``vacuumed`` after a vacuum ran."""

    base: int = VACUUM_BASE
    scale: float = VACUUM_SCALE
    little: float = LITTLE
    warn_after: float = WARN_AFTER
    _last: _LastVacuum | None = None
    _warned: set[tuple[str, str, int]] = field(default_factory=set)
    #: Set while vacuums are held back: who held the horizon last.
    held_by: HorizonHolder | None = None

    def threshold(self, rows: DeadRows) -> float:
        return self.base + self.scale * rows.live

    def due(self, rows: DeadRows) -> bool:
        return rows.may_vacuum and rows.dead >= self.threshold(rows)

    def decide(self, rows: DeadRows, holder: HorizonHolder | None) -> VacuumDecision:
        if not self.due(rows):
            return VacuumDecision(False, "not due")
        if holder is not None and self._pinned(rows, holder):
            self.held_by = holder
            return VacuumDecision(False, "horizon held", self._warn_once(rows, holder))
        last = self._last
        if (
            last is not None
            and last.dead_before - last.left < self.little * last.dead_before
            and not _moved(last, holder)
            and rows.dead - last.left < self.threshold(rows)
        ):
            return VacuumDecision(False, "the last vacuum removed little")
        self.held_by = None
        return VacuumDecision(True, "due")

    def vacuumed(self, before: DeadRows, after: DeadRows, holder: HorizonHolder | None) -> int:
        """Remember a vacuum that ran; returns the dead rows it removed (by the statistics)."""
        self._last = _LastVacuum(
            horizon=holder.xmin if holder else None, dead_before=before.dead, left=after.dead
        )
        return max(0, before.dead - after.dead)

    def _pinned(self, rows: DeadRows, holder: HorizonHolder) -> bool:
        """A vacuum already ran while this holder held the horizon: ours, at the same xmin,
        or any worker's (or autovacuum's) after the holder's snapshot was taken."""
        if self._last is not None and self._last.horizon == holder.xmin:
            return True
        return holder.since is not None and rows.last_vacuum is not None and holder.since <= rows.last_vacuum

    def _warn_once(self, rows: DeadRows, holder: HorizonHolder) -> str | None:
        if holder.key in self._warned or (holder.age is not None and holder.age < self.warn_after):
            return None
        if len(self._warned) >= 1000:
            self._warned.clear()
        self._warned.add(holder.key)
        return (
            f"{rows.dead:,} dead rows cannot be removed while {holder.describe()} holds the xmin"
            f" horizon; no vacuum until it moves ({holder.remedy()})"
        )


def _moved(last: _LastVacuum, holder: HorizonHolder | None) -> bool:
    """The horizon moved since ``last`` ran (unknown when no holder was visible then)."""
    return last.horizon is not None and (holder is None or holder.xmin != last.horizon)


def duration_text(seconds: float) -> str:
    """``seconds`` in an operator's words: ``4.2 s``, ``12 min 5 s``, ``3 h 2 min``."""
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"
