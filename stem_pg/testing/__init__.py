"""Testing helpers: run tasks eagerly without a database, drain a real namespace in-process,
assert on what was enqueued, and (stem_pg.testing.pytest_plugin) pytest fixtures for a
migrated namespace per test. See the README's "Testing your tasks"."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stem_pg.testing.assertions import EnqueuedJob, assert_enqueued, assert_not_enqueued, enqueued_jobs
from stem_pg.testing.binding import bound, create_namespace, drop_namespace, migrated_namespace
from stem_pg.testing.drain import JobOutcome, arun_until_idle, run_until_idle
from stem_pg.testing.eager import EagerError, EagerMode
from stem_pg.testing.eager_results import EagerCanvasResult, EagerResult
from stem_pg.testing.eager_run import EagerJob

if TYPE_CHECKING:
    from stem_pg.client.app import Stem

__all__ = [
    "EagerCanvasResult",
    "EagerError",
    "EagerJob",
    "EagerMode",
    "EagerResult",
    "EnqueuedJob",
    "JobOutcome",
    "arun_until_idle",
    "assert_enqueued",
    "assert_not_enqueued",
    "bound",
    "create_namespace",
    "drop_namespace",
    "eager",
    "enqueued_jobs",
    "migrated_namespace",
    "run_until_idle",
]


def eager(app: Stem, *, propagate: bool = False) -> EagerMode:
    """``with stem_pg.testing.eager(app):``, the same as ``with app.testing.eager():``."""
    return EagerMode(app, propagate=propagate)
