"""Each of the lifeline's ways to notice a dead supervisor works on its own (real processes,
the supervisor SIGKILLed): the pipe's EOF, the parent-death signal, and the check for a parent
that died before the child could set the signal."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, wait_for


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("mode", "told_by"), [("pipe", "pipe"), ("signal", "signal"), ("late", "attach says gone")]
)
def test_a_child_learns_that_its_supervisor_died(mode: str, told_by: str, tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-m", "tests.acceptance.lifeline_probe", mode, str(tmp_path)], cwd=REPO_ROOT
    )
    try:
        wait_for(lambda: (tmp_path / "ready").exists(), 15, "the child to start")
        parent.kill()
        parent.wait(timeout=5)
        killed = time.monotonic()
        gone = tmp_path / "gone"
        wait_for(lambda: gone.exists() and gone.read_text(), 5, "the child to notice")
        assert time.monotonic() - killed < 5  # a loaded machine; the worker test asserts 2 s
        assert (tmp_path / "gone").read_text() == told_by
    finally:
        parent.kill()
        parent.wait(timeout=5)
