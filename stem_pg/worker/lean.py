"""The lean worker process: what ``stem worker run`` becomes once its options are parsed.

The command line (Typer, which coerces every option through pydantic, and the
modules of every ``stem`` command) would stay in a worker's memory for nothing,
about 8 MB per process. So once ``stem worker run`` has parsed its options (and checked
those it can alone: the log settings, the environment, --event-loop), it replaces itself
(``os.execv``: same pid, same stdio and signals) with ``python -m stem_pg.worker.lean``,
which loads the app, points it at its database and namespace, checks that namespace is
migrated and runs the workers: none of the CLI's modules are ever imported there, and the
command never loads the app, the driver or the client (the command's own peak memory
stayed above the worker's: the app's modules and Typer's at once).
The plan travels in the environment (``PLAN_VARIABLE``). The lean process takes it out
at once (it holds the database URL: task code and the subprocesses it starts do not see
it) and puts it back only for a retired worker's fresh process (``supervisor._leave``,
the same command again).
"""

from __future__ import annotations

import base64
import os
import pickle
import sys
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stem_pg.config.logs import LogSettings, configure_logging
from stem_pg.core.errors import StemError
from stem_pg.core.redaction import install_log_redaction, one_line, redact
from stem_pg.worker.startup import WorkerOptions

if TYPE_CHECKING:
    from collections.abc import Callable

PLAN_VARIABLE = "_STEM_WORKER_PLAN"
#: Set: ``stem worker run`` runs the plan in its own process (no exec; tests' fork server).
IN_PLACE_VARIABLE = "_STEM_WORKER_IN_PLACE"


@dataclass(frozen=True)
class LeanPlan:
    """Everything ``stem worker run`` decided, for the lean process to run it."""

    app_spec: str  # module:attribute, as given to --app
    options: WorkerOptions
    log_level: str | None
    log_format: str | None
    processes: int
    metrics_port: int | None
    sys_path: tuple[str, ...]  # the command's import path (the app's module may need it)


def become_lean(plan: LeanPlan) -> None:
    """Replace this process with the lean worker process running ``plan``; where
    ``IN_PLACE_VARIABLE`` is set (the test suite's fork server, whose processes hold every
    module already and whose point is not to start interpreters), run it here instead."""
    encoded = base64.b64encode(pickle.dumps(plan)).decode("ascii")
    if os.environ.get(IN_PLACE_VARIABLE):
        _guarded(lambda: run(plan, encoded))
        return
    os.environ[PLAN_VARIABLE] = encoded
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "stem_pg.worker.lean"])


def run(plan: LeanPlan, encoded: str) -> None:
    """Load the app, check its namespace is migrated (not in a retired worker's fresh
    process: that one keeps retrying a database that is away instead), run the workers."""
    from stem_pg.client.loading import load_app
    from stem_pg.schema.health import check_migrated
    from stem_pg.worker.startup import prepare
    from stem_pg.worker.supervisor import REPLACEMENT_ENVIRONMENT, REPLACEMENT_VARIABLE, supervise

    replacement = os.environ.pop(REPLACEMENT_VARIABLE, None)
    REPLACEMENT_ENVIRONMENT[PLAN_VARIABLE] = encoded
    sys.path[:0] = [entry for entry in plan.sys_path if entry not in sys.path]
    configure_logging(LogSettings.resolve(plan.log_level, plan.log_format))
    app = load_app(plan.app_spec)
    settings = prepare(app, plan.options)
    _RESOLVED.append(app.namespace)
    if not replacement:
        check_migrated(app.url, app.namespace)
    supervise(app, settings, plan.processes, plan.metrics_port)


#: The namespace the plan resolved: an error from a missing table names it (db.missing).
_RESOLVED: list[str] = []


def _guarded(run: Callable[[], None]) -> None:
    """Run ``run``; errors end the process as the ``stem`` command's would (one line with
    no password in it, exit 1; a bug's traceback, redacted)."""
    try:
        run()
    except StemError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        psycopg = sys.modules.get("psycopg")
        if psycopg is not None and isinstance(exc, psycopg.Error):
            from stem_pg.db.missing import not_migrated

            missing = not_migrated(exc, _RESOLVED)
            line = str(missing) if missing is not None else f"{type(exc).__name__}: {one_line(str(exc))}"
            print(f"error: {line}", file=sys.stderr)
        else:
            print(redact(traceback.format_exc()).rstrip(), file=sys.stderr)
        sys.exit(1)


def main() -> None:
    """Run the plan in this process (``python -m stem_pg.worker.lean``)."""
    install_log_redaction()

    def start() -> None:
        encoded = os.environ.pop(PLAN_VARIABLE)
        run(pickle.loads(base64.b64decode(encoded)), encoded)

    _guarded(start)


if __name__ == "__main__":
    main()
