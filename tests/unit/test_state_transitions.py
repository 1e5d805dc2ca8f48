"""The transition table in stem_pg.core.states is what the SQL does, no more and no less.

Every statement that changes a job's state is found in ``sql/*.sql`` and in the
migrations (both the plpgsql and the plain SQL they hold): an ``UPDATE`` of
``jobs`` that sets ``state``, or a ``DELETE`` from ``jobs`` whose rows become
``results``. Its source states are read from its guard (``state = ...``,
``state IN (...)``, in its own WHERE or in the CTEs it reads; a lease token
guard means ``running``, the only state that holds one), its target states from
the value it writes (a state chosen by a parameter may be any state its table's
CHECK allows). The states themselves are compared with the CHECK constraints by
tests/integration/test_migrations.py.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stem_pg.core.states import LIVE_STATES, TERMINAL_STATES, TRANSITIONS, TaskState

ROOT = Path(__file__).resolve().parents[2]

_JOB_WRITE = re.compile(r"\b(UPDATE|DELETE\s+FROM)\s+\S+\.jobs\b", re.I)
_RESULT_INSERT = re.compile(r"\bINSERT\s+INTO\s+\S+\.results\b", re.I)
_CTE = re.compile(r"\b(\w+)\s+AS\s+(?:(?:NOT\s+)?MATERIALIZED\s+)?\(", re.I)
_GUARD_EQ = re.compile(r"\b(?:\w+\.)?state\s*=\s*'(\w+)'", re.I)
_GUARD_IN = re.compile(r"\b(?:\w+\.)?state\s+IN\s*\(([^)]*)\)", re.I)
_LEASE_GUARD = re.compile(r"\blease_token\s*=\s*(?!NULL\b)\S", re.I)


@dataclass(frozen=True)
class Move:
    """One statement that changes the state of jobs: where it is, from what, to what."""

    where: str
    sources: frozenset[str]
    targets: frozenset[str]
    sets: str  # an UPDATE's SET clause ("" for a DELETE)

    def pairs(self) -> set[tuple[str, str]]:
        return {(source, target) for source in self.sources for target in self.targets}


def sql_texts() -> Iterator[tuple[str, str]]:
    """Every SQL text: the named blocks in sql/, and the string constants of each migration."""
    for path in sorted((ROOT / "sql").glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        parts = re.split(r"^--\s*name:\s*(\w+)\s*$", text, flags=re.M)
        yield path.name, parts[0]  # a file without named blocks is one text
        for name, block in zip(parts[1::2], parts[2::2], strict=True):
            yield f"{path.name}:{name}", block
    for path in sorted((ROOT / "migrations" / "versions").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "jobs" in node.value:
                yield f"{path.name}:{node.lineno}", node.value


def masked(text: str) -> str:
    """``text`` with the inside of parentheses and string literals blanked, same length.

    A regex over the result only sees the top level of a statement, and the
    positions it finds are valid in ``text``.
    """
    out, depth, quoted = [], 0, False
    for char in text:
        if char == "'":
            quoted = not quoted
            out.append(char if depth == 0 else " ")
            continue
        if not quoted and char == "(":
            depth += 1
            out.append(char if depth == 1 else " ")
        elif not quoted and char == ")":
            depth -= 1
            out.append(char if depth == 0 else " ")
        else:
            out.append(char if depth == 0 and not quoted else " ")
    return "".join(out)


def group_end(text: str, start: int) -> int:
    """Where the parenthesised group (or statement) that ``start`` is in ends."""
    depth, quoted = 0, False
    for index in range(start, len(text)):
        char = text[index]
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if depth < 0:
                return index
    return len(text)


def statements(text: str) -> list[str]:
    """The statements of a text, comments removed (plpgsql bodies split at their ``;`` too)."""
    text = re.sub(r"--[^\n]*", "", text)
    flat = masked(text)
    cuts = [0, *(m.end() for m in re.finditer(";", flat)), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(cuts) if text[a:b].strip()]


def ctes(statement: str) -> dict[str, tuple[int, int]]:
    """The span of each CTE body (inside its parentheses) of a statement."""
    found = {}
    for match in _CTE.finditer(statement):
        found[match.group(1)] = (match.end(), group_end(statement, match.end()))
    return found


def clause(text: str, keyword: str, *stops: str) -> str:
    """The top-level ``keyword`` clause of ``text``, up to the first top-level stop word."""
    flat = masked(text)
    start = re.search(rf"\b{keyword}\b", flat, re.I)
    if start is None:
        return ""
    stop = re.compile(rf"\b({'|'.join(stops)})\b", re.I).search(flat, start.end()) if stops else None
    return text[start.end() : stop.start() if stop else len(text)]


def items(text: str) -> list[str]:
    """The top-level comma-separated items of a list."""
    flat = masked(text)
    cuts = [0, *(m.end() for m in re.finditer(",", flat)), len(text) + 1]
    return [text[a : b - 1].strip() for a, b in itertools.pairwise(cuts)]


def literals(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"'(\w+)'", text))


def guard_states(statement: str, segment: str, owner: str | None) -> frozenset[str]:
    """The source states a write is guarded by: its WHERE and the CTEs it reads, transitively."""
    spans = ctes(statement)
    texts, seen, todo = [clause(segment, "WHERE", "RETURNING")], {owner}, [segment]
    while todo:
        body = todo.pop()
        for name, (start, end) in spans.items():
            if name not in seen and re.search(rf"\b{name}\b", body):
                seen.add(name)
                todo.append(statement[start:end])
                texts.append(clause(statement[start:end], "WHERE"))
    guard = " ".join(texts)
    states = set(_GUARD_EQ.findall(guard))
    for listed in _GUARD_IN.findall(guard):
        states |= literals(listed)
    if _LEASE_GUARD.search(guard):
        states.add(TaskState.RUNNING.value)
    return frozenset(states)


def result_state(statement: str, owner: str) -> str | None:
    """The state expression of the results insert that stores the rows of CTE ``owner``."""
    for match in _RESULT_INSERT.finditer(statement):
        insert = statement[match.end() : group_end(statement, match.end())]
        columns = items(insert[insert.index("(") + 1 : group_end(insert, insert.index("(") + 1)])
        source = clause(insert, "FROM", "WHERE", "ON", "RETURNING")
        if "state" in columns and re.search(rf"\b{owner}\b", source):
            return items(clause(insert, "SELECT", "FROM"))[columns.index("state")]
    return None


def moves_in(where: str, statement: str) -> Iterator[Move]:
    spans = ctes(statement)
    for match in _JOB_WRITE.finditer(statement):
        owner = next((n for n, (a, b) in spans.items() if a <= match.start() < b), None)
        segment = statement[match.start() : group_end(statement, match.start())]
        if match.group(1).upper() == "UPDATE":
            sets = clause(segment, "SET", "FROM", "WHERE", "RETURNING")
            assigned = [i for i in items(sets) if re.match(r"state\s*=", i, re.I)]
            if not assigned:
                continue  # leases, progress, unique keys: not a move
            targets = literals(assigned[0].split("=", 1)[1]) or frozenset(s.value for s in LIVE_STATES)
        else:
            stored = result_state(statement, owner) if owner else None
            assert stored is not None, f"{where}: a job leaves jobs without a result row:\n{statement}"
            targets = literals(stored) or frozenset(s.value for s in TERMINAL_STATES)
            sets = ""
        yield Move(where, guard_states(statement, segment, owner), targets, sets)


def all_moves() -> list[Move]:
    texts = sql_texts()
    return [move for where, text in texts for stmt in statements(text) for move in moves_in(where, stmt)]


MOVES = all_moves()
TABLE = {(source.value, target.value) for source, targets in TRANSITIONS.items() for target in targets}


def test_the_parser_finds_the_queue_engine_moves() -> None:
    assert len(MOVES) >= 8
    assert {move.where for move in MOVES} >= {"jobs.sql:job_claim", "control.sql:revoke_apply"}


@pytest.mark.parametrize("move", MOVES, ids=lambda move: move.where)
def test_every_state_write_guards_its_source_state(move: Move) -> None:
    assert move.sources, f"{move.where}: a state write without a guard on the state it moves from"


@pytest.mark.parametrize("move", MOVES, ids=lambda move: move.where)
def test_every_move_is_in_the_transition_table(move: Move) -> None:
    assert move.pairs() <= TABLE, f"{move.where} makes moves the table does not allow"


def test_every_transition_in_the_table_is_made_by_some_statement() -> None:
    made = set().union(*(move.pairs() for move in MOVES))
    assert made == TABLE


def test_a_lease_token_means_running() -> None:
    # The lease guard reads as 'running': only the claim gives a token, and every
    # update that moves a job out of running takes it away (a delete removes the row).
    # The limited claim (claim_limited, migration 0013) gets its token as p_token.
    for move in MOVES:
        if move.sets and TaskState.RUNNING.value in move.targets:
            assert re.search(r"\blease_token\s*=\s*(%\(token\)s|p_token\b)", move.sets), move.where
        elif move.sets:
            assert re.search(r"\blease_token\s*=\s*NULL\b", move.sets, re.I), move.where


def test_terminal_states_have_no_way_out() -> None:
    assert all(not TRANSITIONS[state] for state in TERMINAL_STATES)
    assert all(TRANSITIONS[state] for state in LIVE_STATES)
