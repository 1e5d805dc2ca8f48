"""A database that cannot be reached (a closed port, a database that does not exist):
every command, workers and beat included, fails within seconds with one line naming the
host and port, exit code 1, and never the password."""

from __future__ import annotations

import time

import pytest

from tests.acceptance.test_not_migrated_cli import APP
from tests.helpers import run_cli, stem_env

PASSWORD = "Unre4chablePw"

COMMANDS: list[tuple[str, ...]] = [
    ("worker", "run", "--app", APP),
    ("beat", "--app", APP),
    ("tasks", "enqueue", "ns.echo", "--app", APP),
    ("tasks", "enqueue", "ns.echo"),
    ("worker", "status"),
    ("dlq", "list"),
    ("health",),
    ("migrate",),
]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("via", ["--url", "STEM_BROKER_URL"])
def test_an_unreachable_database_is_one_line_naming_host_and_port(database_url: str, via: str) -> None:
    host_port = database_url.split("@", 1)[1].split("/", 1)[0]
    urls = {
        f"postgresql://app:{PASSWORD}@127.0.0.1:1/app": "at 127.0.0.1:1/app: ",
        f"postgresql://postgres:{PASSWORD}@{host_port}/stem_no_such_db": 'stem_no_such_db" does not exist',
    }
    for url, named in urls.items():
        for command in COMMANDS:
            flags = ("--url", url) if via == "--url" else ()
            env = stem_env(STEM_BROKER_URL=url if via == "STEM_BROKER_URL" else None)
            started = time.monotonic()
            # The first in a fresh interpreter, the rest forked from a pre-imported one (run_cli).
            run = run_cli(*command, *flags, env=env, timeout=30, real_process=command == COMMANDS[0])
            assert time.monotonic() - started < 15, command
            assert "Traceback" not in run.stderr, (command, run.stderr)
            lines = run.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: cannot connect to the database at "), (
                command,
                run.stderr,
            )
            assert named in lines[0], (command, lines)
            assert PASSWORD not in run.stderr + run.stdout
            assert run.returncode == 1, (command, run.stderr)
