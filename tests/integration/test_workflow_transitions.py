"""``RUN_TRANSITIONS`` against the SQL: every run-status change the named queries and the
migrated database functions can make, read from their guards, is in the table, and the
table allows nothing they cannot do."""

from __future__ import annotations

import itertools
import re
from typing import Any

import psycopg

from stem_pg.core.workflows import RUN_TRANSITIONS, RunStatus
from stem_pg.db.queries import load_queries

Db = psycopg.Connection[tuple[Any, ...]]

_UPDATE_RUNS = re.compile(r"\bUPDATE\s+(?:[^\s.]+\.)?wf_runs\b(?:\s+AS\s+(?P<alias>\w+))?\s+SET\b", re.I)
_LITERAL = re.compile(r"'(\w+)'")


def _statement(text: str, start: int) -> str:
    """The UPDATE starting at ``start``, up to its RETURNING, its ``;`` or the paren that closes it."""
    depth = 0
    for i in range(start, len(text)):
        char = text[i]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return text[start:i]
        elif depth == 0 and (char == ";" or re.match(r"RETURNING\b", text[i : i + 10], re.I)):
            return text[start:i]
    return text[start:]


def _masked(text: str) -> str:
    """``text`` with everything inside parentheses blanked out, so searches see the top level."""
    out, depth = [], 0
    for char in text:
        depth -= char == ")"
        out.append(char if depth == 0 else " ")
        depth += char == "("
    return "".join(out)


def _changes(statement: str, alias: str | None) -> set[tuple[RunStatus, RunStatus]]:
    """The (from, to) status pairs one UPDATE of wf_runs allows; empty if it keeps the status."""
    top = _masked(statement)
    set_at = re.search(r"\bSET\b", top, re.I)
    assert set_at is not None
    end = re.search(r"\b(?:FROM|WHERE)\b", top[set_at.end() :], re.I)
    set_end = set_at.end() + end.start() if end else len(top)
    where_at = re.search(r"\bWHERE\b", top[set_end:], re.I)
    where = statement[set_end + where_at.end() :] if where_at else ""
    commas = [m.start() for m in re.finditer(",", top[set_at.end() : set_end])]
    bounds = [set_at.end() - 1, *(set_at.end() + c for c in commas), set_end]
    targets: set[RunStatus] = set()
    for assignment in (statement[i + 1 : j] for i, j in itertools.pairwise(bounds)):
        column, _, value = assignment.partition("=")
        if column.strip() == "status":
            results = re.findall(r"\b(?:THEN|ELSE)\s+'(\w+)'", value, re.I) or _LITERAL.findall(value)
            targets |= {RunStatus(v) for v in results}
    if not targets:
        return set()
    column = rf"\b{alias}\.status" if alias else r"(?<![\w.])status"
    guard = re.search(rf"{column}\s*(?:=\s*'(\w+)'|IN\s*\(([^)]*)\))", where, re.I)
    if guard is None:
        sources = set(RunStatus)
    else:
        sources = {RunStatus(v) for v in ([guard[1]] if guard[1] else _LITERAL.findall(guard[2]))}
    return {(old, new) for old in sources for new in targets if old != new}


def _sql_texts(db: Db, namespace: str) -> dict[str, str]:
    """Every named query, and every function the migrations built in ``namespace``, by name."""
    texts = {name: query.text for name, query in load_queries().items()}
    rows = db.execute(
        "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc AS p"
        " JOIN pg_namespace AS n ON n.oid = p.pronamespace WHERE n.nspname = %s",
        [namespace],
    ).fetchall()
    texts.update({f"function {name}": text for name, text in rows})
    return texts


def test_run_transitions_are_the_status_changes_the_sql_guards_allow(db: Db, namespace: str) -> None:
    found: dict[str, set[tuple[RunStatus, RunStatus]]] = {}
    for name, text in _sql_texts(db, namespace).items():
        for match in _UPDATE_RUNS.finditer(text):
            changes = _changes(_statement(text, match.start()), match["alias"])
            if changes:
                found.setdefault(name, set()).update(changes)
    # Who moves a run: if this list changes, RUN_TRANSITIONS and its docs must be checked.
    assert sorted(found) == [
        "dlq_replay",
        "function wf_job_done",
        "wf_cancel",
        "wf_rewind",
        "wf_run_begin",
        "wf_suspend",
    ]
    allowed = {(old, new) for old, targets in RUN_TRANSITIONS.items() for new in targets}
    assert set().union(*found.values()) == allowed
    assert set(RUN_TRANSITIONS) == set(RunStatus)


def test_the_guard_reader_sees_sources_and_targets() -> None:
    case = (
        "UPDATE {ns}.wf_runs AS r SET status = CASE x WHEN 1 THEN 'completed' ELSE 'failed' END,"
        " error = coalesce(a, 'running') FROM {ns}.jobs AS j WHERE r.status IN ('running', 'suspended')"
        " AND j.state = 'running' RETURNING r.id"
    )
    match = _UPDATE_RUNS.search(case)
    assert match is not None
    assert _changes(_statement(case, match.start()), match["alias"]) == {
        (RunStatus.RUNNING, RunStatus.COMPLETED),
        (RunStatus.RUNNING, RunStatus.FAILED),
        (RunStatus.SUSPENDED, RunStatus.COMPLETED),
        (RunStatus.SUSPENDED, RunStatus.FAILED),
    }
    unguarded = "UPDATE s.wf_runs SET status = 'running' WHERE id = 1"
    assert len(_changes(_statement(unguarded, 0), None)) == len(RunStatus) - 1
    assert _changes("UPDATE s.wf_runs SET updated_at = now() WHERE status = 'suspended'", None) == set()
