"""The lean worker process: what ``stem worker run`` becomes once its options are checked.

The command line (Typer, which coerces every option through pydantic, and the
modules of every ``stem`` command) would stay in a worker's memory for nothing,
about 8 MB per process. So once ``stem worker run`` has loaded the app, checked
the namespace and built the settings, it replaces itself (``os.execv``: same pid,
same stdio and signals) with ``python -m stem_pg.worker.lean``, which imports the
app again and runs the workers: none of the CLI's modules are ever imported there.
The plan travels in the environment (``PLAN_VARIABLE``). The lean process takes it out
at once (it holds the database URL: task code and the subprocesses it starts do not see
it) and puts it back only for a retired worker's fresh process (``supervisor._leave``,
the same command again).
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import os
import pickle
import sys
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stem_pg.config.logs import LogSettings, configure_logging
from stem_pg.core.errors import StemError
from stem_pg.core.redaction import install_log_redaction, one_line, redact
from stem_pg.worker.settings import WorkerSettings, default_worker_id

if TYPE_CHECKING:
    from stem_pg.client.app import Stem

PLAN_VARIABLE = "_STEM_WORKER_PLAN"
#: Set: ``stem worker run`` runs the plan in its own process (no exec; tests' fork server).
IN_PLACE_VARIABLE = "_STEM_WORKER_IN_PLACE"


@dataclass(frozen=True)
class LeanPlan:
    """Everything ``stem worker run`` decided, for the lean process to run it."""

    app_spec: str  # module:attribute, already loaded once by the command
    url: str
    direct_url: str | None  # STEM_DIRECT_URL / --direct-url (behind a transaction pooler)
    namespace: str
    log_level: str | None
    log_format: str | None
    settings: WorkerSettings
    processes: int
    metrics_port: int | None
    sys_path: tuple[str, ...]  # the command's import path (the app's module may need it)
    named: bool = False  # --name given: every process of this plan keeps its worker id


def become_lean(plan: LeanPlan) -> None:
    """Replace this process with the lean worker process running ``plan``; where
    ``IN_PLACE_VARIABLE`` is set (the test suite's fork server, whose processes hold every
    module already and whose point is not to start interpreters), run it here instead."""
    encoded = base64.b64encode(pickle.dumps(plan)).decode("ascii")
    if os.environ.get(IN_PLACE_VARIABLE):
        run(plan, encoded)
        return
    os.environ[PLAN_VARIABLE] = encoded
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "stem_pg.worker.lean"])


def _load(spec: str) -> Stem:
    module_name, _, attribute = spec.partition(":")
    app: Stem = getattr(importlib.import_module(module_name), attribute)
    return app


def run(plan: LeanPlan, encoded: str) -> None:
    from stem_pg.worker.supervisor import REPLACEMENT_ENVIRONMENT, REPLACEMENT_VARIABLE, supervise

    os.environ.pop(REPLACEMENT_VARIABLE, None)
    REPLACEMENT_ENVIRONMENT[PLAN_VARIABLE] = encoded
    sys.path[:0] = [entry for entry in plan.sys_path if entry not in sys.path]
    configure_logging(LogSettings.resolve(plan.log_level, plan.log_format))
    app = _load(plan.app_spec)
    app.url = plan.url
    app.direct_url = plan.direct_url
    app.namespace = plan.namespace
    settings = plan.settings
    if not plan.named:  # the command's default id names its pid and a random part: a fresh one
        settings = dataclasses.replace(settings, worker_id=default_worker_id())
    supervise(app, settings, plan.processes, plan.metrics_port)


def main() -> None:
    """Run the plan; errors end the process as the ``stem`` command's would (one line with
    no password in it, exit 1; a bug's traceback, redacted)."""
    install_log_redaction()
    try:
        encoded = os.environ.pop(PLAN_VARIABLE)
        run(pickle.loads(base64.b64decode(encoded)), encoded)
    except StemError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        psycopg = sys.modules.get("psycopg")
        if psycopg is not None and isinstance(exc, psycopg.Error):
            print(f"error: {type(exc).__name__}: {one_line(str(exc))}", file=sys.stderr)
        else:
            print(redact(traceback.format_exc()).rstrip(), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
