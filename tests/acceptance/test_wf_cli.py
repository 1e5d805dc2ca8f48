"""``stem wf`` from a shell: start, ls, show, waiters, cancel, rewind, and bad input."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import Stem
from tests.acceptance.test_workflow_processes import stem_fixture  # noqa: F401 - fixture
from tests.acceptance.workerapp import Workers
from tests.helpers import run_stem, wait_for

WF_APP = "tests.acceptance.wfapp:app"


def stem_cli(database_url: str, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_stem(database_url, "wf", *args, STEM_WORKFLOW_NAMESPACE=namespace, STEM_NAMESPACE=namespace)


@pytest.mark.timeout(120)
def test_wf_commands_drive_and_show_runs(
    stem: Stem, workers: Workers, database_url: str, namespace: str, db: psycopg.Connection[Any]
) -> None:
    workers.start(app=WF_APP)
    started = stem_cli(
        database_url,
        namespace,
        "start",
        "acc.nap",
        "--params",
        '{"seconds": 0.2}',
        "--app",
        WF_APP,
        "--wait",
        "30",
    )
    assert started.returncode == 0, started.stderr
    run_id, result = started.stdout.split()
    assert json.loads(result) == "rested"

    listed = stem_cli(database_url, namespace, "ls", "--status", "completed", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]
    shown = json.loads(stem_cli(database_url, namespace, "show", run_id, "--json").stdout)
    assert shown["status"] == "completed"
    assert [s["step"] for s in shown["steps"]] == ["before", "sleep", "after"]
    table = stem_cli(database_url, namespace, "show", run_id)
    assert "status: completed" in table.stdout and "sleep" in table.stdout

    rewound = stem_cli(database_url, namespace, "rewind", run_id, "--step", "after")
    assert rewound.returncode == 0, rewound.stderr
    assert "1 checkpoint(s) dropped" in rewound.stdout
    wait_for(
        lambda: stem.workflow_run(run_id).status()["status"] == "completed",  # type: ignore[index]
        20,
        "the rewound run to end",
    )

    waiting = stem.start_workflow("acc.approval", {"timeout": 60})
    wait_for(lambda: waiting.id in stem_cli(database_url, namespace, "waiters").stdout, 20, "a waiter")
    cancelled = stem_cli(database_url, namespace, "cancel", waiting.id, "--reason", "test over")
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"cancelled {waiting.id}" in cancelled.stdout
    again = stem_cli(database_url, namespace, "cancel", waiting.id)
    assert again.returncode == 1 and "nothing changed" in again.stdout


def test_wf_cli_refuses_bad_input_clearly(stem: Stem, database_url: str, namespace: str) -> None:
    bad_json = stem_cli(database_url, namespace, "start", "acc.nap", "--params", "{nope")
    assert bad_json.returncode == 2 and "--params" in bad_json.stderr
    not_object = stem_cli(database_url, namespace, "emit", "t", "--payload", "{x")
    assert not_object.returncode == 2 and "--payload" in not_object.stderr
    unknown = stem_cli(database_url, namespace, "show", "no-such-run")
    assert unknown.returncode == 1 and "no workflow run 'no-such-run'" in unknown.stderr
    rewind = stem_cli(database_url, namespace, "rewind", "no-such-run", "--step", "a")
    assert rewind.returncode == 1 and "no workflow run 'no-such-run'" in rewind.stderr
    status = stem_cli(database_url, namespace, "ls", "--status", "sleeping")
    assert status.returncode == 2 and "sleeping" in status.stderr
    bad_ns = stem_cli(database_url, namespace, "ls", "--namespace", 'a"; drop schema stem; --')
    assert bad_ns.returncode == 2
