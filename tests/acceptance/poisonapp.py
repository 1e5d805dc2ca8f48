"""The worker acceptance app plus a task whose return value Postgres cannot store.

Workers load it with ``--app tests.acceptance.poisonapp:app``; ``acc.poison`` records
each run in the ledger (like ``acc.step``), then returns a string holding a NUL
character, which jsonb refuses.
"""

from __future__ import annotations

import os
from typing import Any

from stem_pg.client.app import Stem
from stem_pg.worker.context import TaskContext
from tests.acceptance.workerapp import _log, make_app

#: What ``acc.poison`` returns: ``$.items[3]`` holds the NUL character.
POISON = {"items": [0, 1, 2, "nul \x00 here"]}


def make_poison_app(url: str | None, namespace: str | None) -> Stem:
    stem = make_app(url, namespace)

    @stem.task(name="acc.poison")
    def poison(ctx: TaskContext) -> dict[str, Any]:
        _log(stem, ctx, None, "started")
        return POISON

    return stem


app = (
    make_poison_app(os.environ["STEM_BROKER_URL"], os.environ.get("STEM_NAMESPACE"))
    if os.environ.get("STEM_BROKER_URL")
    else None
)
