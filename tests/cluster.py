"""A private PostgreSQL cluster for crash and restart tests: never the shared server.

``PrivateCluster`` runs its own ``initdb``/``pg_ctl`` server (the embedded server's code)
in a temporary directory on a fixed port, so a test can crash it the way a power cut
would (``crash()``: an immediate shutdown, no checkpoint, like ``pg_ctl stop -m immediate``)
and start it again on the same port (``start()``), while clients keep their URL.
The ``private_cluster`` fixture skips the test with the reason when no server binaries
are found.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from stem_pg.core.errors import ConfigError
from stem_pg.dev import embedded
from stem_pg.schema.migrate import migrate

STOP_TIMEOUT = 30.0


class PrivateCluster:
    """A server of our own in ``data_dir``; ``url`` stays the same across crashes."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = embedded._free_port()
        self._server = embedded.EmbeddedPostgres(data_dir, port=self.port)
        self.url = self._server.start()

    def start(self) -> None:
        """Start the server again after ``crash()`` or ``stop()`` (crash recovery runs first)."""
        self._server = embedded.EmbeddedPostgres(self.data_dir, port=self.port)
        self._server.start()

    def crash(self) -> None:
        """Immediate shutdown (SIGQUIT to the postmaster): backends die at once, nothing is
        checkpointed, and WAL not yet flushed is lost, as in a crash."""
        running = embedded._postmaster(self._server.pgdata)
        if running is None:
            return
        os.kill(running[0], signal.SIGQUIT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while embedded._postmaster(self._server.pgdata) is not None:
            if time.monotonic() > deadline:
                raise AssertionError(f"private cluster in {self.data_dir} did not stop")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.stop(force=True)

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url, autocommit=True)


@pytest.fixture
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    """A fresh private server for one test, stopped afterwards."""
    try:
        embedded.find_bin_dir()
    except ConfigError as exc:
        pytest.skip(f"no PostgreSQL server binaries for a private cluster: {exc}")
    cluster = PrivateCluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


def migrated(cluster: PrivateCluster, namespace: str = "crash") -> str:
    """Migrate ``namespace`` on the cluster; returns the namespace."""
    migrate(cluster.url, namespace)
    return namespace
