"""The typed task API holds for a type checker: ``mypy --strict`` accepts tests/typing/ok.py and
reports exactly the errors tests/typing/wrong.py announces (a ``# E: <part of the message>``
comment on each line that must fail, and no error elsewhere)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "typing"
EXPECTED = re.compile(r"#\s*E:\s*(?P<message>.+?)\s*$")


def mypy(path: Path) -> dict[int, list[str]]:
    """mypy's errors for ``path`` (the project's settings, strict), by line."""
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--show-error-codes", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    errors: dict[int, list[str]] = {}
    for line in done.stdout.splitlines():
        found = re.match(rf"{re.escape(str(path.relative_to(ROOT)))}:(\d+): error: (.*)", line)
        if found:
            errors.setdefault(int(found[1]), []).append(found[2])
        elif ": error:" in line:  # an error in another file (the package itself): fail loudly
            errors.setdefault(0, []).append(line)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return errors


@pytest.mark.timeout(600)
def test_typed_calls_pass_mypy_strict() -> None:
    assert mypy(CASES / "ok.py") == {}


@pytest.mark.timeout(600)
def test_wrong_calls_fail_mypy_strict_with_the_expected_errors() -> None:
    path = CASES / "wrong.py"
    expected = {
        number: found["message"]
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if (found := EXPECTED.search(line))
    }
    assert len(expected) >= 10
    errors = mypy(path)
    assert sorted(errors) == sorted(expected), errors
    for number, message in expected.items():
        assert any(message in error for error in errors[number]), (number, message, errors[number])


@pytest.mark.timeout(600)
def test_the_readme_task_examples_pass_mypy_strict(tmp_path: Path) -> None:
    """The Quick tour's app module and calls, and the Typed tasks section, as a user's project."""
    from tests.acceptance.readme_blocks import readme_blocks

    readme = ROOT / "README.md"
    typed_at = readme.read_text().split("\n").index("### Typed tasks") + 1
    blocks = [
        b
        for b in readme_blocks(readme)
        if b.lang == "python"
        and (b.section == "Quick tour" or (b.section == "Tasks and enqueueing" and b.line > typed_at))
    ]
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    calls = []
    for block in blocks:
        if block.path is not None:
            (tmp_path / block.path).write_text(block.body)
        else:
            calls.append(block.body)
    assert {b.path for b in blocks} >= {"myapp/tasks.py", "myapp/typed.py"} and len(calls) >= 3
    (tmp_path / "calls.py").write_text("\n".join(calls))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "myapp",
            "calls.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.timeout(600)
def test_pyright_agrees_on_which_lines_fail() -> None:
    """pyright (its own messages) accepts ok.py and flags exactly the ``E:`` lines of wrong.py."""
    import json
    import shutil

    pyright = shutil.which("pyright", path=str(Path(sys.executable).parent))
    if pyright is None:
        pytest.skip("pyright is not installed (it is in the dev extra)")
    files = [CASES / "ok.py", CASES / "wrong.py"]
    done = subprocess.run(
        [pyright, "--outputjson", "--pythonpath", sys.executable, *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if not done.stdout.startswith("{"):  # its node runtime could not be fetched or started
        pytest.skip(f"pyright did not run: {(done.stdout + done.stderr).strip()[:200]}")
    report = json.loads(done.stdout)
    failing: dict[str, set[int]] = {}
    for diagnostic in report["generalDiagnostics"]:
        if diagnostic["severity"] == "error":
            line = diagnostic["range"]["start"]["line"] + 1
            failing.setdefault(Path(diagnostic["file"]).name, set()).add(line)
    expected = {
        number
        for number, line in enumerate((CASES / "wrong.py").read_text().splitlines(), start=1)
        if EXPECTED.search(line)
    }
    assert failing == {"wrong.py": expected}, report["generalDiagnostics"]
