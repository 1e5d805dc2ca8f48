"""``stem routing validate`` and ``dump`` run as a real process: output and exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROUTING_EXAMPLE, run_cli, stem_env
from tests.routing_examples import STEM_ROUTING


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


@pytest.fixture
def stem_file(tmp_path: Path) -> Path:
    path = tmp_path / "stem.yaml"
    path.write_text(STEM_ROUTING)
    return path


def test_dump_shows_stems_keys(stem_file: Path) -> None:
    validate = stem("routing", "validate", stem_file.name, cwd=stem_file.parent)
    assert validate.returncode == 0, validate.stderr
    assert validate.stdout.strip() == "stem.yaml: ok (3 queues, 1 broadcast, 3 routes)"
    result = stem(
        "routing",
        "dump",
        stem_file.name,
        "-t",
        "x",
        "-t",
        "reports.a",
        "-q",
        "secondary",
        cwd=stem_file.parent,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "fallbacks are advisory" in out
    assert 'jobs.# region=eu weight=2  {"owner":"billing","limits":{"rate":10}}' in out
    assert '{"scope":"fleet"}' in out
    routes = [line.split() for line in out.splitlines() if line[:2] in ("0 ", "1 ")]
    assert routes[0] == ["0", "task=reports.*|invoices.*", "queue", "primary", "-", "7", "-"]
    assert routes[1] == [
        "1",
        "task=*",
        "and",
        "sent",
        "to",
        "secondary",
        "queue",
        "urgent",
        "-",
        "8",
        '{"note":"promoted"}',
    ]
    tasks = [line.split() for line in out.splitlines() if line.startswith(("x ", "reports.a "))]
    assert tasks == [
        ["x", "queue", "urgent", "8", "routes[1]"],
        ["reports.a", "queue", "urgent", "8", "routes[1]"],
    ]
    data = json.loads(stem("routing", "dump", stem_file.name, "--json", cwd=stem_file.parent).stdout)
    assert data["queues"]["primary"]["meta"]["limits"] == {"rate": 10}
    assert data["routes"][1]["match"]["queue_override"] == "secondary"


def test_camel_case_typo_fails_on_one_line(stem_file: Path) -> None:
    stem_file.write_text(STEM_ROUTING.replace("priorityOverride: 7", "priorityOveride: 7"))
    result = stem("routing", "validate", stem_file.name, cwd=stem_file.parent)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: stem.yaml:30: routes[0].priorityOveride: unknown key 'priorityOveride'"
        " (did you mean 'priorityOverride'?); allowed: match, target, priority_override, priority, options"
    )
