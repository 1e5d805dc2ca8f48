"""``stem shell``: app, tasks and Control loaded into an interactive Python; fed on stdin here."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO_ROOT, stem_env

APP = "tests.acceptance.shellapp:app"


def shell(database_url: str, namespace: str, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stem_pg", "shell", "--app", APP, "--namespace", namespace, *args],
        input=script,
        cwd=REPO_ROOT,
        env=stem_env(STEM_BROKER_URL=database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_shell_loads_the_app_its_tasks_and_control(database_url: str, namespace: str) -> None:
    script = "\n".join(
        [
            "print(sorted(n for n in dir() if not n.startswith('_')))",
            "print(sorted(tasks))",
            "print(app.namespace, Control.__name__, add(2, 3), send is tasks['mail.send'])",
            "print(add.enqueue(x=1, y=2).status().state)",
        ]
    )
    done = shell(database_url, namespace, script)
    assert done.returncode == 0, done.stderr
    names, tasks, facts, state = done.stdout.splitlines()
    assert names == str(["Control", "add", "app", "onboard", "send", "tasks"])
    assert tasks == str(["mail.send", "onboard", "reports.2024", "tests.acceptance.shellapp.add"])
    assert facts == f"{namespace} Control 5 True"
    assert state == "queued"
    banner = done.stderr
    assert f"namespace {namespace}" in banner and "Control" in banner
    assert "  add      tests.acceptance.shellapp.add" in banner
    assert "  tasks['reports.2024']" in banner


def test_the_shell_refuses_a_namespace_not_migrated(database_url: str, fresh_namespace: str) -> None:
    done = shell(database_url, fresh_namespace, "print('ran')")
    assert done.returncode == 1
    assert done.stdout == "" and done.stderr.startswith("error: ") and "Traceback" not in done.stderr
