"""The embedded PostgreSQL starts, serves, is reused on the same directory and stops."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from stem_pg.core.errors import ConfigError
from stem_pg.dev import embedded
from stem_pg.dev.embedded import EmbeddedPostgres


def _postmaster_pid(server: EmbeddedPostgres) -> int:
    return int((server.pgdata / "postmaster.pid").read_text().splitlines()[0])


def _port(url: str) -> int:
    port = psycopg.conninfo.conninfo_to_dict(url)["port"]
    assert port is not None
    return int(port)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(tmp_path / "pg")
    try:
        yield pg
    finally:
        pg.stop()


def test_start_select_reuse_stop(server: EmbeddedPostgres) -> None:
    url = server.start()
    assert url == server.url
    assert url.startswith("postgresql://") and "127.0.0.1" in url
    with psycopg.connect(url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        assert conn.execute("select current_database()").fetchone() == ("stem",)
        assert conn.execute("show max_connections").fetchone() == ("200",)
    pid = _postmaster_pid(server)

    second = EmbeddedPostgres(server.data_dir)
    assert second.start() == url  # same port, no second server
    assert _postmaster_pid(server) == pid
    second.stop()  # did not start it: leaves it running
    with psycopg.connect(url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)

    server.stop()
    assert not (server.pgdata / "postmaster.pid").exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    with pytest.raises(ConfigError):
        _ = server.url


def test_restart_reuses_initialised_dir(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path / "pg") as first, psycopg.connect(first.url) as conn:
        conn.execute("create table kept (x int)")
        conn.commit()
    with EmbeddedPostgres(tmp_path / "pg") as again, psycopg.connect(again.url) as conn:
        assert conn.execute("select count(*) from kept").fetchone() == (0,)
    assert not (again.pgdata / "postmaster.pid").exists()


def test_stop_after_parent_became_private(tmp_path: Path) -> None:
    # As root the server user was granted search on tmp_path; a concurrent pytest session
    # takes that back (it resets /tmp/pytest-of-root to 0700), yet stop() must still work.
    with EmbeddedPostgres(tmp_path / "pg") as server:
        tmp_path.chmod(0o700)
    assert not (server.pgdata / "postmaster.pid").exists()


def test_embedded_url_leaves_server_running(tmp_path: Path) -> None:
    url = embedded.embedded_url(tmp_path / "pg")
    owner = EmbeddedPostgres(tmp_path / "pg")
    try:
        assert owner.start() == url
        with psycopg.connect(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        owner.stop(force=True)  # the server embedded_url left running


def test_pgserver_binaries(tmp_path: Path) -> None:
    bin_dir = embedded.pgserver_bin_dir()
    if bin_dir is None:
        pytest.skip("pgserver is not installed (pip install 'stem_pg[embedded]')")
    with EmbeddedPostgres(tmp_path / "pg", bin_dir=bin_dir) as server:
        with psycopg.connect(server.url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        reused = EmbeddedPostgres(server.data_dir, bin_dir=bin_dir)
        assert _port(reused.start()) == _port(server.url)
        reused.stop()
    assert not (server.pgdata / "postmaster.pid").exists()


def test_no_binaries_names_both_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "local_bin_dir", lambda: None)
    monkeypatch.setattr(embedded, "pgserver_bin_dir", lambda: None)
    with pytest.raises(ConfigError, match=r"install PostgreSQL.*stem_pg\[embedded\]"):
        embedded.find_bin_dir()


def test_default_dir_is_per_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("STEM_EMBEDDED_DIR", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert embedded.default_dir() == tmp_path / "home" / ".local" / "share" / "stem_pg" / "embedded"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert embedded.default_dir() == tmp_path / "data" / "stem_pg" / "embedded"
    monkeypatch.setenv("STEM_EMBEDDED_DIR", str(tmp_path / "mine"))
    assert embedded.default_dir() == tmp_path / "mine"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.delenv("STEM_EMBEDDED_DIR")
    assert embedded.default_dir() == embedded.ROOT_DEFAULT_DIR  # root's home is usually 0700
