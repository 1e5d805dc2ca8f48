"""The client records a workflow (definition and its jobs' task options) without the worker;
a worker's registry binds the handler that replays runs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.core.workflows import WorkflowError
from stem_pg.worker.workflows import WorkflowContext, WorkflowTasks

URL = "postgresql://nobody@127.0.0.1:1/none"  # never connected to: nothing here opens a pool


def _app() -> Stem:
    app = Stem(URL, namespace="wfreg", config=StemConfig())

    @app.workflow(name="wf.ship", queue="slow", max_retries=7, max_run_time="1h")
    async def ship(ctx: WorkflowContext, order: int) -> int:
        return order

    @app.task(name="wf.plain")
    def plain() -> None: ...

    return app


def test_the_client_registers_a_workflow_as_a_task_with_its_options() -> None:
    app = _app()
    task = app.registry["wf.ship"]
    assert task.is_async and task.context_param == "ctx"
    assert (task.options.queue, task.options.max_retries) == ("slow", 7)
    assert app.workflows["wf.ship"].options.max_run_time == 3600.0
    with pytest.raises(WorkflowError, match="executed by a worker"):
        asyncio.run(task.fn("r1", None))


def test_a_worker_registry_binds_the_replaying_handler_and_sees_later_registrations() -> None:
    app = _app()
    tasks = WorkflowTasks(app.registry, app.workflows, app.backend, app.planner)
    bound = tasks.get("wf.ship")
    assert bound is not None and bound.fn is not app.registry["wf.ship"].fn
    assert (bound.options, bound.context_param, bound.is_async) == (
        app.registry["wf.ship"].options,
        "ctx",
        True,
    )
    assert tasks.get("wf.ship") is bound  # bound once
    assert tasks["wf.plain"] is app.registry["wf.plain"]
    assert [(t.name, t.fn) for t in tasks] == [
        ("wf.plain", app.registry["wf.plain"].fn),
        ("wf.ship", bound.fn),
    ]

    @app.workflow(name="wf.late")
    async def late(ctx: WorkflowContext) -> None: ...

    assert "wf.late" in tasks and len(tasks) == 3
    later = tasks.get("wf.late")
    assert later is not None and later.fn is not app.registry["wf.late"].fn
    assert tasks.get("wf.nope") is None


def test_the_client_side_imports_no_worker_module() -> None:
    probe = (
        "import json, sys\n"
        "import stem_pg.client.app, stem_pg.client.workflows\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('stem_pg.worker'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
