"""``stem routing validate`` and ``dump`` run as a real process: output and exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROUTING_EXAMPLE, run_cli, stem_env


def stem(*args: str, cwd: Path, routing_config: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m stem_pg`` with STEM_ROUTING_CONFIG only when the test sets it."""
    return run_cli(*args, cwd=cwd, env=stem_env(STEM_ROUTING_CONFIG=routing_config))


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING_EXAMPLE)
    return path


def test_validate_example(example: Path) -> None:
    result = stem("routing", "validate", example.name, cwd=example.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "routing.yaml: ok (2 queues, 2 broadcasts, 2 routes)"


def test_validate_without_file_uses_legacy(tmp_path: Path) -> None:
    result = stem("routing", "validate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "legacy single-queue configuration" in result.stdout


def test_dump_shows_where_a_task_goes(example: Path) -> None:
    result = stem("routing", "dump", str(example), "--task", "reports.daily", cwd=example.parent)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "default queue: primary (alias 'default'; fallbacks: secondary)" in out
    assert "jobs.default" in out
    assert "at-most-once" in out
    task_lines = [line.split() for line in out.splitlines() if line.startswith("reports.daily")]
    assert task_lines == [["reports.daily", "queue", "primary", "0", "routes[0]"]]


def test_dump_json(example: Path) -> None:
    args = ("routing", "dump", str(example), "--json", "--task", "reports.daily", "--task", "x.y")
    result = stem(*args, cwd=example.parent)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["default_queue"]["queue"] == "primary"
    assert list(data["queues"]) == ["primary", "secondary"]
    assert [route["match"]["task"] for route in data["routes"]] == ["reports.*", "control.*"]
    daily, other = data["tasks"]
    assert daily["task"] == "reports.daily"
    assert (daily["kind"], daily["name"], daily["route"]) == ("queue", "primary", 0)
    assert (other["name"], other["route"], other["matched"]) == ("primary", None, "default")


def test_env_var_names_the_file(example: Path) -> None:
    validate = stem("routing", "validate", cwd=example.parent, routing_config=str(example))
    assert validate.returncode == 0, validate.stderr
    assert "ok (2 queues, 2 broadcasts, 2 routes)" in validate.stdout
    dump = stem(
        "routing",
        "dump",
        "--json",
        "-t",
        "control.reboot",
        cwd=example.parent,
        routing_config=str(example),
    )
    assert dump.returncode == 0, dump.stderr
    assert json.loads(dump.stdout)["tasks"][0]["name"] == "control"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            ROUTING_EXAMPLE.replace("priority_range: [0, 9]", "priorty_range: [0, 9]"),
            "bad.yaml:10: queues.primary.priorty_range: unknown key 'priorty_range'",
        ),
        (
            "queues:\n  primary:\n    exchange: !!python/object/apply:os.system ['touch pwned']\n",
            "bad.yaml:3: unsupported YAML tag '!!python/object/apply:os.system'",
        ),
    ],
    ids=["typo", "python-tag"],
)
@pytest.mark.parametrize("command", ["validate", "dump"])
def test_bad_file_fails_cleanly(tmp_path: Path, command: str, text: str, expected: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    result = stem("routing", command, "bad.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "pwned").exists()


def test_missing_file_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "routing.yaml"
    result = stem("routing", "validate", str(missing), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{missing}: routing file not found" in result.stderr
    assert "Traceback" not in result.stderr
