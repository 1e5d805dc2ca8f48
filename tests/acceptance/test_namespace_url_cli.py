"""One namespace rule and one URL rule for every command: ``--namespace`` / ``--url``, then
the component's variable (STEM_WORKER_NAMESPACE...) / STEM_BROKER_URL, then STEM_NAMESPACE,
then what the ``--app``'s own ``Stem(url, namespace=...)`` says, then ``stem``.

Each case runs the command against namespaces that are not migrated: the one line it
prints names the namespace it chose, and "not migrated" (rather than "cannot connect")
shows it reached the good database."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.acceptance.test_not_migrated_cli import APP, assert_one_line, expected
from tests.helpers import REPO_ROOT, run_cli, stem_env, unique_namespace

#: A URL nothing listens on, with a password that must never be printed.
CLOSED = "postgresql://app:Cl0sedPortPw@127.0.0.1:1/app"

WITH_APP = {
    "worker run": ("worker", "run", "--app", APP),
    "beat": ("beat", "--app", APP),
    "tasks enqueue": ("tasks", "enqueue", "ns.echo", "--app", APP),
    "wf start": ("wf", "start", "ns.flow", "--app", APP),
}


def names() -> dict[str, str]:
    return {key: unique_namespace(key) for key in ("app", "env", "worker", "flag")}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("command", WITH_APP)
def test_the_namespace_comes_from_the_flag_then_the_variables_then_the_app(
    database_url: str, command: str
) -> None:
    ns = names()
    args = WITH_APP[command]
    app_only = stem_env(STEM_BROKER_URL=database_url, NSAPP_NAMESPACE=ns["app"])
    assert_one_line(run_cli(*args, env=app_only, timeout=30), expected(ns["app"]))

    with_env = {**app_only, "STEM_NAMESPACE": ns["env"]}
    assert_one_line(run_cli(*args, env=with_env, timeout=30), expected(ns["env"]))

    with_worker = {**with_env, "STEM_WORKER_NAMESPACE": ns["worker"]}
    chosen = ns["worker"] if command == "worker run" else ns["env"]
    assert_one_line(run_cli(*args, env=with_worker, timeout=30), expected(chosen))

    flagged = run_cli(*args, "--namespace", ns["flag"], env=with_worker, timeout=30)
    assert_one_line(flagged, expected(ns["flag"]))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("command", WITH_APP)
def test_the_url_comes_from_the_flag_then_stem_broker_url_then_the_app(
    database_url: str, command: str
) -> None:
    ns = unique_namespace("url")
    args = (*WITH_APP[command], "--namespace", ns)
    # The app's own URL, when nothing else names one.
    app_only = stem_env(NSAPP_URL=database_url)
    assert_one_line(run_cli(*args, env=app_only, timeout=30), expected(ns))
    # STEM_BROKER_URL wins over the URL in the app's code (as CELERY_BROKER_URL does).
    env_wins = stem_env(NSAPP_URL=CLOSED, STEM_BROKER_URL=database_url)
    assert_one_line(run_cli(*args, env=env_wins, timeout=30), expected(ns))
    # --url wins over both.
    flag_wins = run_cli(*args, "--url", database_url, env={**env_wins, "STEM_BROKER_URL": CLOSED}, timeout=30)
    assert_one_line(flag_wins, expected(ns))
    refused = run_cli(*args, "--url", CLOSED, env=env_wins, timeout=30)
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert "cannot connect to the database at 127.0.0.1:1/app" in refused.stderr
    assert "Cl0sedPortPw" not in refused.stderr + refused.stdout


@pytest.mark.timeout(120)
def test_a_worker_runs_in_its_apps_namespace_and_says_so(database_url: str, namespace: str) -> None:
    """``stem worker run --app`` without --namespace serves the app's namespace (it used
    to go to ``stem``), and its start-up line names it."""
    env = stem_env(STEM_BROKER_URL=database_url, NSAPP_NAMESPACE=namespace)
    proc = subprocess.Popen(
        [sys.executable, "-m", "stem_pg", "worker", "run", "--app", APP, "--shutdown-grace", "1"],
        cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        started = next((line for line in proc.stderr if "consuming" in line), "")
        assert f"in namespace {namespace}" in started, started
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    "variable", ["STEM_RESULT_BACKEND_URL", "STEM_REVOKE_STORE_URL", "STEM_WORKFLOW_STORE_URL"]
)
@pytest.mark.parametrize(
    "command", [("worker", "run", "--app", APP), ("tasks", "enqueue", "ns.echo"), ("health",)]
)
def test_a_store_url_naming_another_database_is_refused(
    database_url: str, variable: str, command: tuple[str, ...]
) -> None:
    env = stem_env(STEM_BROKER_URL=database_url, **{variable: CLOSED})
    run = run_cli(*command, env=env, timeout=30)
    assert_one_line(
        run,
        f"error: {variable} names another database than STEM_BROKER_URL: stem_pg keeps every store"
        " (results, schedules, locks, revokes, workflows) in the broker's database: unset it",
    )
    assert "Cl0sedPortPw" not in run.stderr
