"""``stem embedded status|url|stop|reset`` on a server of the test's own (STEM_EMBEDDED_DIR
under tmp_path: a user's real embedded server is never touched). Each start is a real initdb and
pg_ctl, so one test walks the whole life cycle."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from stem_pg.dev.embedded import DEFAULT_PORT, EmbeddedPostgres
from stem_pg.dev.embedded_ops import stop_embedded
from tests.helpers import run_cli, stem_env


@pytest.fixture
def embedded_dir(tmp_path: Path) -> Iterator[Path]:
    data_dir = tmp_path / "embedded"
    try:
        yield data_dir
    finally:
        if data_dir.exists():
            stop_embedded(EmbeddedPostgres(data_dir))


def lines(data_dir: Path, *args: str) -> list[str]:
    result = run_cli("embedded", *args, env=stem_env(STEM_EMBEDDED_DIR=str(data_dir)), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


@pytest.mark.timeout(240)
def test_status_url_stop_reset(embedded_dir: Path) -> None:
    assert lines(embedded_dir, "status") == [
        "embedded PostgreSQL: not running",
        f"directory: {embedded_dir}",
        "port: -",
        "url: -",
        "size on disk: 0 bytes",
    ]

    with socket.socket() as holder:  # another program holds the default port: a free one is used
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past a TIME_WAIT, as servers do
        try:
            holder.bind(("127.0.0.1", DEFAULT_PORT))
            holder.listen()
        except OSError:
            pass  # someone else holds it already
        [url] = lines(embedded_dir, "url")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    assert url == f"postgresql://postgres@127.0.0.1:{port}/stem" and port != DEFAULT_PORT
    with psycopg.connect(url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    running = lines(embedded_dir, "status")
    assert running[0].startswith("embedded PostgreSQL: running (pid ")
    assert running[2:4] == [f"port: {port}", f"url: {url}"]
    assert running[4].startswith("size on disk: ") and running[4].endswith(" MB")
    assert lines(embedded_dir, "url") == [url]  # reused

    assert lines(embedded_dir, "stop") == [f"stopped the embedded PostgreSQL in {embedded_dir}"]
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    assert lines(embedded_dir, "status")[0] == "embedded PostgreSQL: not running"
    assert lines(embedded_dir, "stop") == [f"the embedded PostgreSQL in {embedded_dir} is not running"]
    assert lines(embedded_dir, "url") == [url]  # the same port again, though the default is free now

    refused = subprocess.run(  # no terminal to confirm on
        [sys.executable, "-m", "stem_pg", "embedded", "reset"],
        env=stem_env(STEM_EMBEDDED_DIR=str(embedded_dir)), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith(f"error: not deleting {embedded_dir} (")
    assert refused.stderr.endswith("): stdin is not a terminal to confirm; pass --yes\n")
    assert (embedded_dir / "pgdata").is_dir()

    [deleted] = lines(embedded_dir, "reset", "--yes")
    assert deleted.startswith(f"deleted the embedded PostgreSQL in {embedded_dir} (")
    assert not embedded_dir.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
