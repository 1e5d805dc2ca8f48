"""Editing schedules from code and the CLI: apply a file, enable, disable, delete.

Each change is a guarded write (``version`` must be what was read), so two
editors cannot silently overwrite each other, and the table's trigger wakes
running beats: no restart is needed for a change to take effect.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from stem_pg.client.backend import Backend
from stem_pg.core.errors import ScheduleConflict, ScheduleError
from stem_pg.core.schedule_specs import first_fire
from stem_pg.core.schedules import ScheduleEntry, check_entry, check_name, entry_from_row
from stem_pg.db.connect import connection
from stem_pg.db.queries import queries_for
from stem_pg.db.stores.schedules import FireRecord, ScheduleRow, ScheduleStore

Conn = psycopg.Connection[TupleRow]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Change:
    """One step of an apply: ``create``, ``update`` (with the fields that differ), ``delete``
    or ``unchanged``."""

    action: str
    name: str
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApplyPlan:
    """What ``apply`` did (or, for a dry run, would do)."""

    changes: tuple[Change, ...] = field(default_factory=tuple)
    dry_run: bool = False

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)


class Schedules:
    """The schedule store of one namespace; each call opens a short connection."""

    def __init__(self, url: str, namespace: str, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.url = url
        self.store = ScheduleStore(queries_for(namespace))
        self.clock = clock

    @classmethod
    def of(cls, backend: Backend) -> Schedules:
        """The schedule store of an application's namespace."""
        return cls(backend.url, backend.namespace)

    @contextmanager
    def _conn(self) -> Iterator[Conn]:
        with connection(self.url, role="schedules") as conn:
            yield conn

    def list(self) -> builtins.list[ScheduleRow]:
        with self._conn() as conn:
            return self.store.list(conn)

    def get(self, name: str) -> ScheduleRow | None:
        """The entry ``name``; None if there is none (or ``name`` could not be one)."""
        if not _could_be_name(name):
            return None
        with self._conn() as conn:
            return self.store.get(conn, name=name)

    def fires(self, name: str, *, limit: int = 10) -> builtins.list[FireRecord]:
        """The latest recorded fires of ``name``, newest first."""
        if not _could_be_name(name):
            return []
        with self._conn() as conn:
            return self.store.recent_fires(conn, name=name, limit=limit)

    def save(self, entry: ScheduleEntry, *, version: int | None = None) -> int:
        """Create ``entry`` (``version=None``) or replace the one at ``version``; the new version.

        Raises ScheduleConflict if the name is taken (create) or the entry is no
        longer at ``version`` (update).
        """
        check_entry(entry)
        first = self._first(entry)
        with self._conn() as conn:
            if version is None:
                created = self.store.insert(conn, entry=entry, next_run_at=first)
                if created is None:
                    raise ScheduleConflict(f"entry {entry.name!r} already exists; update it with its version")
                return created
            current = self.store.get(conn, name=entry.name)
            return self._update(conn, entry, current, version)

    def apply(
        self, entries: Sequence[ScheduleEntry], *, prune: bool = False, dry_run: bool = False
    ) -> ApplyPlan:
        """Make the store match ``entries``: create new ones, update changed ones and, with
        ``prune``, delete those not listed. All or nothing; a dry run changes nothing."""
        for entry in entries:  # the dry run refuses all that the real apply would
            check_entry(entry)
            self._first(entry)
        names = [e.name for e in entries]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ScheduleError(f"entry {duplicates[0]!r} is given more than once")
        with self._conn() as conn:
            current = {row.name: row for row in self.store.list(conn)}
            plan = ApplyPlan(tuple(_plan(entries, current, prune)), dry_run)
            if dry_run:
                return plan
            wanted = {e.name: e for e in entries}
            with conn.transaction():
                for change in plan.changes:
                    self._carry_out(conn, change, wanted.get(change.name), current.get(change.name))
        return plan

    def sync_code(self, entries: Sequence[ScheduleEntry], *, rounds: int = 3) -> ApplyPlan:
        """Make the ``code`` entries of the store match ``entries`` (``@app.periodic``, synced by
        beat at start-up): create, update, delete the ones no longer declared. An entry paused
        by hand stays paused. Entries from files are left alone; one of the same name with
        another definition is a ScheduleError. Two beats syncing at once: the loser reads again.
        """
        for entry in entries:
            check_entry(entry)
            self._first(entry)
        for attempt in range(rounds):
            try:
                with self._conn() as conn, conn.transaction():
                    current = {row.name: row for row in self.store.list(conn)}
                    plan = ApplyPlan(tuple(_code_plan(entries, current)))
                    wanted = {e.name: e for e in entries}
                    for change in plan.changes:
                        row, declared = current.get(change.name), wanted.get(change.name)
                        if declared is not None and row is not None:  # paused by hand: stays so
                            declared = replace(declared, enabled=row.enabled)
                        self._carry_out(conn, change, declared, row, origin="code")
                    return plan
            except ScheduleConflict:
                if attempt == rounds - 1:
                    raise
        raise AssertionError("unreachable")

    def _carry_out(
        self,
        conn: Conn,
        change: Change,
        entry: ScheduleEntry | None,
        row: ScheduleRow | None,
        origin: str = "store",
    ) -> None:
        if change.action == "create" and entry is not None:
            if self.store.insert(conn, entry=entry, next_run_at=self._first(entry), origin=origin) is None:
                raise ScheduleConflict(f"entry {entry.name!r} was created by someone else meanwhile")
        elif change.action == "update" and entry is not None and row is not None:
            self._update(conn, entry, row, row.version)
        elif (
            change.action == "delete"
            and row is not None
            and not self.store.delete(conn, name=row.name, version=row.version)
        ):
            raise ScheduleConflict(_changed(row.name, row.version))

    def _update(self, conn: Conn, entry: ScheduleEntry, row: ScheduleRow | None, version: int) -> int:
        if row is None:
            raise ScheduleConflict(f"entry {entry.name!r} does not exist (deleted meanwhile?)")
        reschedule = row.spec != entry.spec.to_json() or (entry.enabled and not row.enabled)
        new = self.store.update(
            conn,
            entry=entry,
            version=version,
            reschedule=reschedule,
            next_run_at=self._first(entry) if reschedule else None,
        )
        if new is None:
            raise ScheduleConflict(_changed(entry.name, version))
        return new

    def set_enabled(self, name: str, enabled: bool, *, version: int | None = None) -> int:
        """Enable (next fire computed from now) or disable ``name``; the new version.

        Raises ScheduleError if there is no such entry, ScheduleConflict if it is
        no longer at ``version``.
        """
        with self._conn() as conn:
            row = self._require(conn, name)
            next_run_at = self._first(entry_from_row(_as_mapping(row))) if enabled else None
            new = self.store.set_enabled(
                conn, name=name, enabled=enabled, next_run_at=next_run_at, version=version
            )
        if new is None:
            raise ScheduleConflict(_changed(name, version))
        return new

    def delete(self, name: str, *, version: int | None = None) -> None:
        """Delete ``name``; ScheduleError if missing, ScheduleConflict if not at ``version``."""
        with self._conn() as conn:
            self._require(conn, name)
            if not self.store.delete(conn, name=name, version=version):
                raise ScheduleConflict(_changed(name, version))

    def _require(self, conn: Conn, name: str) -> ScheduleRow:
        try:
            check_name(name)
        except ValueError as exc:
            raise ScheduleError(str(exc)) from None
        row = self.store.get(conn, name=name)
        if row is None:
            raise ScheduleError(f"no schedule entry {name!r}")
        return row

    def _first(self, entry: ScheduleEntry) -> datetime | None:
        try:
            return first_fire(entry.spec, self.clock())
        except (OverflowError, ValueError) as exc:
            reason = f"no next fire time can be computed: {exc}"
            raise ScheduleError(f"entry {entry.name!r}: spec: {reason}") from None


def _could_be_name(name: object) -> bool:
    try:
        check_name(name)
    except ValueError:
        return False
    return True


def _changed(name: str, version: int | None) -> str:
    return f"entry {name!r} changed since it was read (version {version}); read it again and retry"


def _as_mapping(row: ScheduleRow) -> dict[str, Any]:
    return {k: getattr(row, k) for k in row.__dataclass_fields__}


def _plan(entries: Sequence[ScheduleEntry], current: dict[str, ScheduleRow], prune: bool) -> Iterator[Change]:
    for entry in entries:
        row = current.get(entry.name)
        if row is None:
            yield Change("create", entry.name)
            continue
        differ = _differ(entry, row)
        if differ and row.origin == "code":
            raise ScheduleError(_clash(entry.name, differ, "in code (@app.periodic)", "by this file"))
        yield Change("update" if differ else "unchanged", entry.name, differ)
    if prune:  # the code's entries are beat's to prune
        listed = {e.name for e in entries}
        for name in sorted(n for n, row in current.items() if n not in listed and row.origin != "code"):
            yield Change("delete", name)


def _code_plan(entries: Sequence[ScheduleEntry], current: dict[str, ScheduleRow]) -> Iterator[Change]:
    """``sync_code``'s steps: a stored entry not from code that differs is a clash."""
    for entry in entries:
        row = current.get(entry.name)
        if row is None:
            yield Change("create", entry.name)
            continue
        differ = tuple(k for k in _differ(entry, row) if k != "enabled")
        if differ and row.origin != "code":
            raise ScheduleError(_clash(entry.name, differ, "in the schedule store (a file?)", "in code"))
        yield Change("update" if differ else "unchanged", entry.name, differ)
    listed = {e.name for e in entries}
    for name in sorted(n for n, row in current.items() if n not in listed and row.origin == "code"):
        yield Change("delete", name)


def _differ(entry: ScheduleEntry, row: ScheduleRow) -> tuple[str, ...]:
    stored = _as_mapping(row)
    return tuple(k for k, v in entry.definition().items() if stored[k] != v)


def _clash(name: str, fields: tuple[str, ...], there: str, here: str) -> str:
    return (
        f"schedule entry {name!r} is defined {there} and {here} with a different {', '.join(fields)}:"
        " rename one of them"
    )
