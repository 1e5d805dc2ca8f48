"""What slows a namespace's queue, as findings with a severity and a fix (``stem doctor``):
the statistics go in, the thresholds decide, no IO.

A queue on Postgres slows down when dead rows pile up (the claim index steps over every one
until a vacuum removes them), and they pile up while something holds the xmin horizon back
(stem_pg/core/vacuum.py), while autovacuum lags, or while the planner works from statistics
taken before a burst. The other findings are the server's limits a queue meets: the NOTIFY
queue and the connection slots.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from stem_pg.core.redaction import redact
from stem_pg.core.vacuum import HorizonHolder, duration_text

Severity = Literal["ok", "warn", "problem"]
PAGE = 8192
#: A string literal, closed or cut off ('...', E'...'), or a dollar-quoted one ($x$...$x$).
_LITERAL = re.compile(r"'(?:[^']|'')*'?|\$(?P<tag>\w*)\$.*?(?:\$(?P=tag)\$|$)", re.S)


@dataclass(frozen=True)
class Thresholds:
    """When a statistic becomes a warning or a problem (seconds, shares of 1, counts)."""

    #: A session idle in transaction (or a prepared transaction) this long is a problem.
    idle_in_transaction: float = 60.0
    #: A statement running this long while it holds the horizon is a warning.
    long_query: float = 300.0
    #: An active replication slot (a standby's feedback) this many transactions behind warns;
    #: an inactive one holding an xmin is always a problem.
    slot_xmin_age: int = 1_000_000
    dead_ratio_warn: float = 0.2
    dead_ratio_problem: float = 1.0
    #: Dead rows below this count are no finding whatever the ratio (a small table).
    dead_min: int = 10_000
    bloat_warn: float = 0.5
    #: Tables and indexes smaller than this are never called bloated (bytes).
    bloat_min_bytes: int = 8 * 1024 * 1024
    #: Rows changed since the last analyze, as a share of the live rows.
    unanalyzed_warn: float = 0.5
    unanalyzed_min: int = 10_000
    #: No vacuum of a table with dead rows for this long is a warning.
    vacuum_age_warn: float = 3600.0
    notify_warn: float = 0.5
    notify_problem: float = 0.9
    connections_warn: float = 0.8
    connections_problem: float = 0.95
    #: A worker whose last heartbeat is older than this is not counted as running (seconds).
    worker_stale_after: float = 120.0


@dataclass(frozen=True)
class Finding:
    """One thing found: what (``check``), about what (``subject``), how bad, and the fix."""

    check: str
    subject: str
    severity: Severity
    detail: str
    fix: str = ""
    #: The finding's numbers and names for ``--json`` (a holder's pid, user, query...).
    facts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class JobsTable:
    """The jobs table's statistics (epoch seconds, server clock; None: never)."""

    live: int
    dead: int
    modified_since_analyze: int
    last_vacuum: float | None
    last_autovacuum: float | None
    last_analyze: float | None
    last_autoanalyze: float | None
    now: float
    bytes: int
    row_width: int | None  # None: never analyzed


@dataclass(frozen=True)
class IndexStats:
    name: str
    table_name: str
    bytes: int
    entries: float  # -1: never vacuumed or analyzed
    valid: bool
    key_width: int


@dataclass(frozen=True)
class ServerStats:
    notify_usage: float
    connections: int
    max_connections: int


def query_excerpt(text: str | None, length: int = 80) -> str:
    """The first ``length`` characters of a statement, string literals masked (a password
    in ``ALTER ROLE ... PASSWORD '...'``, a token in a value) and on one line."""
    if not text:
        return ""
    masked = redact(_LITERAL.sub("'***'", text))
    return " ".join(masked.split())[:length]


def horizon_findings(holders: Iterable[HorizonHolder], th: Thresholds) -> list[Finding]:
    """One finding per holder of the xmin horizon that is old enough to matter."""
    found: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for holder in holders:
        who = (holder.kind, str(holder.pid if holder.pid is not None else holder.name))
        if who in seen:
            continue  # a session with both a snapshot and a transaction id: its oldest one
        seen.add(who)
        severity = _holder_severity(holder, th)
        if severity != "ok":
            found.append(
                Finding(
                    "xmin_horizon",
                    _subject(holder),
                    severity,
                    _describe(holder),
                    holder.remedy(),
                    _facts(holder),
                )
            )
    if not found:
        found.append(
            Finding("xmin_horizon", "sessions", "ok", "nothing holds the xmin horizon back for long")
        )
    return found


def _holder_severity(holder: HorizonHolder, th: Thresholds) -> Severity:
    age = holder.age or 0.0
    if holder.kind == "slot":
        if holder.state == "inactive":
            return "problem"
        return "warn" if holder.xmin_age >= th.slot_xmin_age else "ok"
    if holder.kind == "prepared":
        return "problem" if age >= th.idle_in_transaction else "ok"
    if holder.state is not None and holder.state.startswith("idle in transaction"):
        return "problem" if age >= th.idle_in_transaction else "ok"
    return "warn" if age >= th.long_query else "ok"


def _subject(holder: HorizonHolder) -> str:
    if holder.kind == "session":
        return f"pid {holder.pid}"
    return f"{'replication slot' if holder.kind == 'slot' else 'prepared transaction'} {holder.name}"


def _facts(holder: HorizonHolder) -> dict[str, Any]:
    return {
        "kind": holder.kind,
        "pid": holder.pid,
        "name": holder.name,
        "user": holder.user_name,
        "application_name": holder.application_name,
        "state": holder.state,
        "age_seconds": holder.age,
        "xmin_age": holder.xmin_age,
        "query": query_excerpt(holder.query) if holder.query else None,
    }


def _describe(holder: HorizonHolder) -> str:
    text = f"{holder.describe()} holds back the xmin horizon: VACUUM cannot remove newer dead rows"
    if holder.user_name:
        text += f"; user {holder.user_name!r}"
    if holder.query:
        text += f"; query: {query_excerpt(holder.query)}"
    return text


def table_findings(table: JobsTable | None, th: Thresholds) -> list[Finding]:
    """Dead rows, bloat, vacuum and analyze of the jobs table."""
    if table is None:
        return [
            Finding("jobs_table", "jobs", "ok", "no statistics yet (the server has not seen the table used)")
        ]
    return [_dead_rows(table, th), _bloat(table, th), _vacuumed(table, th), _analyzed(table, th)]


def _dead_rows(t: JobsTable, th: Thresholds) -> Finding:
    ratio = t.dead / max(t.live, 1)
    detail = f"{t.dead:,} dead rows for {t.live:,} live ({ratio:.0%})"
    fix = "VACUUM (ANALYZE) the jobs table once nothing holds the xmin horizon back"
    if t.dead < th.dead_min or ratio < th.dead_ratio_warn:
        return Finding("dead_rows", "jobs", "ok", detail)
    return Finding("dead_rows", "jobs", "problem" if ratio >= th.dead_ratio_problem else "warn", detail, fix)


def _bloat(t: JobsTable, th: Thresholds) -> Finding:
    if t.row_width is None or t.bytes < th.bloat_min_bytes:
        return Finding(
            "table_bloat", "jobs", "ok", f"{_size(t.bytes)}, too small or not analyzed to estimate"
        )
    # a heap tuple: 23 bytes of header, aligned, plus a 4-byte line pointer; fillfactor 80
    needed = math.ceil(t.live * (_align(24 + t.row_width) + 4) / (PAGE * 0.8)) * PAGE
    share = max(0.0, 1 - needed / t.bytes)
    detail = f"{_size(t.bytes)}, an estimated {share:.0%} of it free or dead space"
    if share < th.bloat_warn:
        return Finding("table_bloat", "jobs", "ok", detail)
    fix = "VACUUM FULL or pg_repack the jobs table in a quiet hour (VACUUM FULL locks it)"
    return Finding("table_bloat", "jobs", "warn", detail, fix)


def _vacuumed(t: JobsTable, th: Thresholds) -> Finding:
    last = max((v for v in (t.last_vacuum, t.last_autovacuum) if v is not None), default=None)
    detail = f"last vacuum {_ago(t.last_vacuum, t.now)}, last autovacuum {_ago(t.last_autovacuum, t.now)}"
    stale = last is None or t.now - last >= th.vacuum_age_warn
    if stale and t.dead >= th.dead_min:
        fix = "check that autovacuum is on and its workers keep up (autovacuum_max_workers, cost limits)"
        return Finding("vacuum", "jobs", "warn", detail, fix)
    return Finding("vacuum", "jobs", "ok", detail)


def _analyzed(t: JobsTable, th: Thresholds) -> Finding:
    detail = (
        f"{t.modified_since_analyze:,} rows changed since the last analyze"
        f" ({_ago(t.last_analyze, t.now)}, autoanalyze {_ago(t.last_autoanalyze, t.now)})"
    )
    burst = (
        t.modified_since_analyze >= th.unanalyzed_min
        and t.modified_since_analyze >= th.unanalyzed_warn * max(t.live, 1)
    )
    if burst:
        return Finding(
            "analyze", "jobs", "warn", detail, "ANALYZE the jobs table: the planner's estimates are stale"
        )
    return Finding("analyze", "jobs", "ok", detail)


def index_findings(indexes: Sequence[IndexStats], expected: Iterable[str], th: Thresholds) -> list[Finding]:
    """Missing and invalid indexes of the namespace, and bloated indexes of its jobs table."""
    have = {index.name: index for index in indexes}
    found = [
        Finding(
            "index_missing",
            name,
            "problem",
            "the migrations create this index; it is not there",
            _recreate(name),
        )
        for name in sorted(set(expected) - have.keys())
    ]
    for index in indexes:
        if not index.valid:
            found.append(
                Finding(
                    "index_invalid",
                    index.name,
                    "problem",
                    "invalid (a failed CREATE INDEX CONCURRENTLY?)",
                    f"REINDEX INDEX {index.name}",
                )
            )
        elif index.table_name == "jobs":
            found.extend(_index_bloat(index, th))
    if not found:
        found.append(Finding("indexes", "indexes", "ok", f"all {len(have)} indexes present and valid"))
    return found


def _recreate(name: str) -> str:
    return f"re-create {name}: its definition is in sql/schema.sql (or stem migrate to a fresh namespace)"


def _index_bloat(index: IndexStats, th: Thresholds) -> list[Finding]:
    if index.bytes < th.bloat_min_bytes or index.entries < 0:
        return []
    # a B-tree entry: 8 bytes of header plus the key, aligned, and a 4-byte line pointer;
    # leaf pages 90 % full, plus the meta page
    needed = math.ceil(index.entries * (_align(8 + index.key_width) + 4) / (PAGE * 0.9)) * PAGE + PAGE
    share = max(0.0, 1 - needed / index.bytes)
    if share < th.bloat_warn:
        return []
    detail = f"{_size(index.bytes)}, an estimated {share:.0%} of it empty or dead entries"
    return [Finding("index_bloat", index.name, "warn", detail, f"REINDEX INDEX CONCURRENTLY {index.name}")]


def server_findings(server: ServerStats, th: Thresholds) -> list[Finding]:
    """The NOTIFY queue and the connection slots."""
    usage = server.notify_usage
    notify = Finding("notify_queue", "server", "ok", f"pg_notification_queue_usage() is {usage:.1%}")
    if usage >= th.notify_warn:
        fix = "a session that LISTENs sits in a long transaction: end it (see xmin_horizon)"
        notify = Finding(
            notify.check, "server", "problem" if usage >= th.notify_problem else "warn", notify.detail, fix
        )
    share = server.connections / max(server.max_connections, 1)
    detail = f"{server.connections} of {server.max_connections} connections in use ({share:.0%})"
    conns = Finding("connections", "server", "ok", detail)
    if share >= th.connections_warn:
        fix = "use fewer pool connections per worker, a pooler (PgBouncer), or raise max_connections"
        conns = Finding(
            "connections", "server", "problem" if share >= th.connections_problem else "warn", detail, fix
        )
    return [notify, conns]


def fleet_findings(live_workers: int, need: int, server: ServerStats, th: Thresholds) -> list[Finding]:
    """The ``need`` connections the namespace's ``live_workers`` running worker processes may
    open between them (each registers its own count), against the slots: a worker opens its
    connections as its loops first need them, so the fleet can run out of slots later even
    while few are in use now (README, "Connection budget")."""
    share = need / max(server.max_connections, 1)
    each = f" ({need // live_workers} each)" if live_workers and need % live_workers == 0 else ""
    detail = (
        f"{live_workers} running worker processes may open {need} connections{each}"
        f" of the {server.max_connections} the server allows ({share:.0%})"
    )
    facts = {"worker_processes": live_workers, "connections": need}
    if share < th.connections_warn:
        return [Finding("worker_connections", "fleet", "ok", detail, facts=facts)]
    fix = (
        "run fewer worker processes (more --concurrency each), put other clients behind a pooler,"
        " or raise max_connections"
    )
    severity: Severity = "problem" if share >= th.connections_problem else "warn"
    return [Finding("worker_connections", "fleet", severity, detail, fix, facts)]


def exit_code(findings: Iterable[Finding]) -> int:
    """1 when any finding is a problem; warnings alone exit 0."""
    return 1 if any(f.severity == "problem" for f in findings) else 0


def _align(width: int) -> int:
    return (width + 7) // 8 * 8


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = n / 1024
    for unit in ("kB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _ago(moment: float | None, now: float) -> str:
    return "never" if moment is None else f"{duration_text(max(0.0, now - moment))} ago"
