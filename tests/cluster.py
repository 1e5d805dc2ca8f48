"""A private PostgreSQL cluster for crash and restart tests: never the shared server.

``PrivateCluster`` runs its own ``initdb``/``pg_ctl`` server (the embedded server's code)
in a temporary directory on a fixed port, so a test can crash it the way a power cut
would (``crash()``: an immediate shutdown, no checkpoint, like ``pg_ctl stop -m immediate``)
and start it again on the same port (``start()``), while clients keep their URL.
The ``private_cluster`` fixture skips the test with the reason when no server binaries
are found. ``standby_of(primary)`` makes a hot standby of one (``pg_basebackup -R``,
streaming replication), a read replica for tests of what may run there.

The directory is a temporary directory of its own under the system's, not pytest's
``tmp_path``: as root the server runs as ``postgres``, which must be able to reach it, and
every pytest session that starts meanwhile (other checkouts on a shared machine) makes
``/tmp/pytest-of-root`` unreachable again and may delete its older directories.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from stem_pg.core.errors import ConfigError
from stem_pg.dev import embedded
from stem_pg.schema.migrate import migrate

STOP_TIMEOUT = 30.0


class PrivateCluster:
    """A server of our own in ``data_dir``; ``url`` stays the same across crashes."""

    def __init__(self, data_dir: Path, *, listen: str = "127.0.0.1") -> None:
        """``listen``: the server's ``listen_addresses`` (see ``trust()`` for who may connect)."""
        self.data_dir = data_dir
        self.port = embedded._free_port()
        self.listen = listen
        self._server = embedded.EmbeddedPostgres(data_dir, port=self.port, listen=listen)
        self.url = self._server.start()

    def start(self) -> None:
        """Start the server again after ``crash()`` or ``stop()`` (crash recovery runs first)."""
        self._server = embedded.EmbeddedPostgres(self.data_dir, port=self.port, listen=self.listen)
        self._server.start()

    def trust(self, network: str) -> None:
        """Let clients of ``network`` (``10.231.7.0/24``) in without a password, as initdb's
        trust lets 127.0.0.1 in; the server reloads its configuration."""
        with (self._server.pgdata / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {network} trust\n")
        with self.connect() as db:
            db.execute("SELECT pg_reload_conf()")

    def url_at(self, address: str) -> str:
        """The URL of the same database at ``address`` (one of ``listen``)."""
        return self.url.replace("@127.0.0.1:", f"@{address}:", 1)

    def crash(self) -> None:
        """Immediate shutdown (SIGQUIT to the postmaster): backends die at once, nothing is
        checkpointed, and WAL not yet flushed is lost, as in a crash."""
        running = embedded._postmaster(self._server.pgdata)
        if running is None:
            return
        os.kill(running[0], signal.SIGQUIT)
        deadline = time.monotonic() + STOP_TIMEOUT
        # Until the postmaster itself is gone (its children go first), not only its pid file:
        # a start before that would find the port still taken.
        while embedded._postmaster(self._server.pgdata) is not None or not _exited(running[0]):
            if time.monotonic() > deadline:
                raise AssertionError(f"private cluster in {self.data_dir} did not stop")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.stop(force=True)

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url, autocommit=True)


def _exited(pid: int) -> bool:
    """Whether process ``pid`` ended (a zombie nobody reaped counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/status").read_text()
        return any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines())
    return False


@contextmanager
def running_cluster() -> Iterator[PrivateCluster]:
    """A fresh private server, stopped and removed afterwards; skips the test without
    server binaries."""
    try:
        embedded.find_bin_dir()
    except ConfigError as exc:
        pytest.skip(f"no PostgreSQL server binaries for a private cluster: {exc}")
    data_dir = Path(tempfile.mkdtemp(prefix="stem_pg-cluster-"))
    try:
        cluster = PrivateCluster(data_dir)
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def private_cluster() -> Iterator[PrivateCluster]:
    """A fresh private server for one test, stopped and removed afterwards."""
    with running_cluster() as cluster:
        yield cluster


@contextmanager
def standby_of(primary: PrivateCluster) -> Iterator[PrivateCluster]:
    """A hot standby of ``primary`` streaming its WAL (``pg_basebackup -R``: a copy of the
    primary now, then a server in recovery on a port of its own that answers reads and
    refuses writes), stopped and removed afterwards. Its ``url`` names the same database."""
    bin_dir = embedded.find_bin_dir()
    user = embedded._server_user()
    data_dir = Path(tempfile.mkdtemp(prefix="stem_pg-standby-"))
    try:
        embedded._prepare_dir(data_dir, user)
        embedded._grant_search(data_dir, user)
        pgdata = data_dir / "pgdata"
        backup = [str(bin_dir / "pg_basebackup"), "-D", str(pgdata), "-R", "-X", "stream"]
        backup += ["--checkpoint=fast", "-d", primary.url]
        embedded._run(backup, user, f"pg_basebackup of the private cluster into {pgdata}")
        with (pgdata / "postgresql.auto.conf").open("a") as conf:  # its owner stays the server user
            conf.write("hot_standby = on\n")
        standby = PrivateCluster(data_dir)  # initdb sees the copy and leaves it alone
        try:
            yield standby
        finally:
            standby.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def caught_up(primary: PrivateCluster, standby: PrivateCluster, timeout: float = 30.0) -> None:
    """Wait until ``standby`` replayed all the WAL ``primary`` wrote so far."""
    with primary.connect() as db:
        row = db.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    deadline = time.monotonic() + timeout
    with standby.connect() as db:
        while True:
            replayed = db.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (row[0],)).fetchone()
            if replayed is not None and replayed[0]:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the standby did not replay up to {row[0]} within {timeout} s")
            time.sleep(0.05)


def migrated(cluster: PrivateCluster, namespace: str = "crash") -> str:
    """Migrate ``namespace`` on the cluster; returns the namespace."""
    migrate(cluster.url, namespace)
    return namespace
