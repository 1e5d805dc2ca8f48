"""``stem demo``, as the README's first command runs it (with a database URL given)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stem_pg.dev.embedded import EmbeddedPostgres
from stem_pg.dev.embedded_ops import stop_embedded
from tests.helpers import run_cli, run_stem, stem_env


@pytest.mark.timeout(120)
def test_demo_runs_the_whole_loop(database_url: str, fresh_namespace: str, tmp_path: object) -> None:
    result = run_stem(database_url, "demo", "--namespace", fresh_namespace, cwd=str(tmp_path), timeout=100)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "demo.add(2, 3)       -> 5" in out
    assert "demo.flaky()         -> 'succeeded on attempt 2'" in out
    assert "chord(10 x demo.square, demo.total) -> 285" in out
    assert "workflow demo.signup  -> 'acct-ada, welcome mail sent to ada' (3 checkpoints)" in out
    assert "succeeded  116" in out


@pytest.mark.timeout(240)
def test_demo_twice_on_the_embedded_server(tmp_path: Path) -> None:
    """Without STEM_BROKER_URL: the first run starts the embedded server, the second reuses it,
    and each counts only its own jobs; both say how to use and stop the server."""
    data_dir = tmp_path / "embedded"
    env = stem_env(STEM_EMBEDDED_DIR=str(data_dir))
    try:
        first = run_cli("demo", env=env, cwd=tmp_path, timeout=200)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "started an embedded PostgreSQL at postgresql://postgres@127.0.0.1:" in first.stdout
        second = run_cli("demo", env=env, cwd=tmp_path, timeout=100)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "reusing the running embedded PostgreSQL at postgresql://" in second.stdout
        for out in (first.stdout, second.stdout):
            assert "  export STEM_BROKER_URL=$(stem embedded url)" in out
            assert "Stop it with `stem embedded stop`" in out
            counts = out.split("GROUP BY state;\n", 1)[1].split("The embedded PostgreSQL")[0]
            assert counts.split() == ["succeeded", "116"]  # this run's jobs only
    finally:
        if data_dir.exists():
            stop_embedded(EmbeddedPostgres(data_dir))
