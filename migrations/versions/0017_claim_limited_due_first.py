"""The limited claim reads its candidates in the claim index's order: due jobs first.

Revision ID: 0017
Revises: 0016

``claim_limited_v2`` (0016) read a queue's candidates ``ORDER BY priority DESC, seq``
while the claim index (0015) is ``(queue, priority DESC, not_before, seq)``: without a
group key, every limited claim read and sorted the queue's whole due backlog to keep its
first ``4 x limit + 100`` rows (~2.5 ms on 1,200 waiting jobs, ~100 ms on 100k), and with
a group key ran its round robin in enqueue rather than due order. Inside a priority bucket
candidates now come in the order the jobs became due, then ``seq``, as the plain claim
takes them, so the non-fair read walks the index and stops at its limit.

The function keeps its name, arguments and rows (``CREATE OR REPLACE``): workers of 0016
and of this release call it alike. Its text is 0016's with the three orderings of each
candidate query changed, made from 0016's script so that this is the whole difference.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from stem_pg.schema.migration_ops import run_sql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# (0016's text, this revision's, how many times it occurs: once per candidate query)
_DUE_FIRST = [
    ("CREATE FUNCTION {ns}.claim_limited_v2(", "CREATE OR REPLACE FUNCTION {ns}.claim_limited_v2(", 1),
    ("ORDER BY c.priority DESC, c.seq) AS turn", "ORDER BY c.priority DESC, c.not_before, c.seq) AS turn", 2),
    ("SELECT j.id, j.task, j.priority, j.seq", "SELECT j.id, j.task, j.priority, j.not_before, j.seq", 2),
    ("ORDER BY turn, c.priority DESC, c.seq", "ORDER BY turn, c.priority DESC, c.not_before, c.seq", 2),
    ("ORDER BY j.priority DESC, j.seq", "ORDER BY j.priority DESC, j.not_before, j.seq", 1),
]


def _revision_0016() -> ModuleType:
    path = Path(__file__).with_name("0016_claim_limited_v2.py")
    spec = importlib.util.spec_from_file_location("stem_pg_migration_0016", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rewritten(text: str, replacements: list[tuple[str, str, int]]) -> str:
    for old, new, times in replacements:
        if text.count(old) != times:
            raise RuntimeError(f"migration 0017: {old!r} occurs {text.count(old)} times in 0016, not {times}")
        text = text.replace(old, new)
    return text


def upgrade() -> None:
    run_sql(_rewritten(_revision_0016().UPGRADE, _DUE_FIRST))


def downgrade() -> None:  # 0016's function again, replacing this one
    run_sql(_rewritten(_revision_0016().UPGRADE, _DUE_FIRST[:1]))
