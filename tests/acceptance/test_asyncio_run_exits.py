"""``asyncio.run(app.aenqueue(...))`` in a short script: the async pool closes with its
event loop, so the script ends, whether the call failed or not (before, a failed call
left psycopg_pool's tasks running and the loop's shutdown waited for them for ever)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.helpers import REPO_ROOT, stem_env, unique_namespace

RUNS = 10
EXIT_WITHIN = 20.0

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from stem_pg import Stem
    from stem_pg.config.settings import StemConfig

    app = Stem(sys.argv[1], namespace=sys.argv[2], config=StemConfig())

    @app.task(name="exits.noop")
    def noop() -> None: ...

    async def twice_then_close() -> None:
        await app.aenqueue("exits.noop")
        await app.aclose()

    try:
        if sys.argv[3] == "fail":
            asyncio.run(app.aenqueue("exits.noop"))
        else:
            for _ in range(2):  # each asyncio.run gets a pool of its own loop
                print("enqueued", asyncio.run(app.aenqueue("exits.noop")).id, flush=True)
            asyncio.run(twice_then_close())
    except Exception as exc:
        print("raised", type(exc).__name__, flush=True)
    print("returned", flush=True)
    """
)


def _run(database_url: str, namespace: str, mode: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, "-c", SCRIPT, database_url, namespace, mode],
            cwd=REPO_ROOT,
            env=stem_env(),
            capture_output=True,
            text=True,
            timeout=EXIT_WITHIN,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout
        pytest.fail(f"asyncio.run did not return within {EXIT_WITHIN} s ({mode}); output so far: {out!r}")


@pytest.mark.timeout(RUNS * EXIT_WITHIN + 30)
def test_a_failed_aenqueue_under_asyncio_run_never_hangs_at_exit(database_url: str) -> None:
    missing = unique_namespace("absent")  # never migrated: the insert fails at once
    for _ in range(RUNS):
        done = _run(database_url, missing, "fail")
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["raised NotMigratedError", "returned"], (done.stdout, done.stderr)


def test_aenqueue_under_several_asyncio_runs_then_aclose(database_url: str, namespace: str) -> None:
    done = _run(database_url, namespace, "ok")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["enqueued", "enqueued", "returned"], (
        done.stdout,
        done.stderr,
    )
    assert "Traceback" not in done.stderr and "destroyed" not in done.stderr, done.stderr
