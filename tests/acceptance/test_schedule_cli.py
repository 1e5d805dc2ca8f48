"""``stem schedule`` as a real process: apply, --dry-run, list, enable/disable, dry-run, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from stem_pg.config.safe_yaml import MAX_NODES
from tests.helpers import REPO_ROOT, run_stem, stem_env
from tests.unit.test_safe_yaml import ALIAS_BOMB

Db = psycopg.Connection[tuple[Any, ...]]

FILE = """\
nightly:
  task: reports.daily
  spec: {cron: "0 2 * * *", timezone: Europe/Berlin}
  kwargs: {day: yesterday}
tick:
  task: demo.add
  spec: every:1m
"""


def rows(db: Db, ns: str) -> list[tuple[Any, ...]]:
    return db.execute(
        sql.SQL("SELECT * FROM {}.schedules ORDER BY name").format(sql.Identifier(ns))
    ).fetchall()


def test_apply_dry_run_changes_nothing_then_apply(
    database_url: str, namespace: str, db: Db, tmp_path: Path
) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text(FILE)
    dry = run_stem(database_url, "schedule", "apply", "--file", str(path), "--dry-run", "-n", namespace)
    assert dry.returncode == 0, dry.stderr
    assert "would create nightly" in dry.stdout and "dry run: nothing changed" in dry.stdout
    assert rows(db, namespace) == []

    done = run_stem(database_url, "schedule", "apply", "--file", str(path), "-n", namespace)
    assert done.returncode == 0, done.stderr
    assert "2 create" in done.stdout
    before = rows(db, namespace)
    path.write_text(FILE.replace("every:1m", "every:2m"))
    dry = run_stem(database_url, "schedule", "apply", "--file", str(path), "--dry-run", "-n", namespace)
    assert "would update tick (spec)" in dry.stdout
    assert rows(db, namespace) == before

    listed = run_stem(database_url, "schedule", "list", "-n", namespace, "--json")
    assert [e["name"] for e in json.loads(listed.stdout)] == ["nightly", "tick"]
    table = run_stem(database_url, "schedule", "list", "-n", namespace).stdout
    assert "cron 0 2 * * * (Europe/Berlin)" in table and "every 1m" in table

    assert run_stem(database_url, "schedule", "disable", "tick", "-n", namespace).returncode == 0
    shown = json.loads(run_stem(database_url, "schedule", "show", "tick", "-n", namespace).stdout)
    assert (shown["enabled"], shown["state"], shown["version"]) == (False, "disabled", 2)
    stale = run_stem(database_url, "schedule", "enable", "tick", "--version", "1", "-n", namespace)
    assert stale.returncode == 1 and "changed since it was read (version 1)" in stale.stderr
    enabled = run_stem(database_url, "schedule", "enable", "tick", "--version", "2", "-n", namespace)
    assert enabled.returncode == 0
    assert run_stem(database_url, "schedule", "delete", "tick", "-n", namespace).returncode == 0
    missing = run_stem(database_url, "schedule", "show", "tick", "-n", namespace)
    assert missing.returncode == 1 and "no schedule entry 'tick'" in missing.stderr


def test_bad_specs_are_refused_naming_the_entry(
    database_url: str, namespace: str, db: Db, tmp_path: Path
) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text(
        "good:\n  task: t\n  spec: every:1m\n"
        "interval:\n  task: t\n  spec: {every: 5x}\n"
        "minute:\n  task: t\n  spec: {cron: 61 * * * *}\n"
        "zone:\n  task: t\n  spec: {cron: '0 9 * * *', timezone: Mars/Olympus}\n"
    )
    result = run_stem(database_url, "schedule", "apply", "--file", str(path), "-n", namespace)
    assert result.returncode == 1
    assert f"{path}:6: entry 'interval': spec.every: '5x' is not a duration" in result.stderr
    assert (
        f"{path}:9: entry 'minute': spec.cron: '61 * * * *': minute field '61' is not valid" in result.stderr
    )
    assert f"{path}:12: entry 'zone': spec.timezone: unknown time zone 'Mars/Olympus'" in result.stderr
    assert rows(db, namespace) == [], "nothing of a bad file is applied"


def test_dry_run_of_a_spec(database_url: str) -> None:
    result = run_stem(
        database_url,
        "schedule",
        "dry-run",
        "--spec",
        "cron: 30 2 * * *",
        "--timezone",
        "Europe/Berlin",
        "--start",
        "2026-03-27T00:00:00Z",
        "--count",
        "3",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "2026-03-27T01:30:00+00:00  (2026-03-27T02:30:00+01:00 Europe/Berlin)",
        "2026-03-28T01:30:00+00:00  (2026-03-28T02:30:00+01:00 Europe/Berlin)",
        "2026-03-29T01:00:00+00:00  (2026-03-29T03:00:00+02:00 Europe/Berlin)",
    ]
    bad = run_stem(database_url, "schedule", "dry-run", "--spec", "every 5x")
    assert bad.returncode == 1 and "error: --spec: '5x' is not a duration" in bad.stderr


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command prints: exit 1, no traceback, nothing on stdout."""
    assert result.returncode == 1, (result.returncode, result.stdout[-1000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr and result.stdout == "", result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


def test_an_endless_interval_is_refused_by_dry_run_and_apply_alike(
    database_url: str, namespace: str, db: Db, tmp_path: Path
) -> None:
    """``every: 99999999999999999999d`` once passed the dry run and crashed the apply with OverflowError."""
    path = tmp_path / "schedules.yaml"
    path.write_text(
        "ok:\n  task: t\n  spec: every:1m\nendless:\n  task: t\n  spec: {every: 99999999999999999999d}\n"
    )
    expected = (
        f"error: {path}:6: entry 'endless': spec.every: '99999999999999999999d' is longer than the maximum,"
        " 3650d (about 10 years)"
    )
    for dry_run in (("--dry-run",), ()):
        result = run_stem(database_url, "schedule", "apply", "--file", str(path), *dry_run, "-n", namespace)
        assert _one_error_line(result) == expected
    assert rows(db, namespace) == []


def test_an_alias_bomb_is_refused_with_one_line_in_bounded_memory(
    database_url: str, namespace: str, db: Db, tmp_path: Path
) -> None:
    """Thirteen lines that expand to 387 million strings: refused, not grown to gigabytes (the
    command runs with 1 GB of address space; the timeout is generous, this is no benchmark)."""
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))"
    run = f"{limit}; import sys; from stem_pg.cli import main; sys.argv[0] = 'stem'; main()"
    for dry_run in (("--dry-run",), ()):
        result = subprocess.run(
            [sys.executable, "-c", run, "schedule", "apply", "--file", str(path), *dry_run, "-n", namespace],
            cwd=REPO_ROOT, env=stem_env(STEM_BROKER_URL=database_url), capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        line = _one_error_line(result)
        assert line.startswith(f"error: {path}:"), line
        assert line.endswith(f"more than {MAX_NODES} values after expanding aliases"), line
    assert rows(db, namespace) == []
