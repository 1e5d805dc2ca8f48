"""``stem demo``, as the README's first command runs it (with a database URL given)."""

from __future__ import annotations

import pytest

from tests.helpers import run_stem


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
