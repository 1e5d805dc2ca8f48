"""A PgBouncer in transaction pooling mode in front of the test database, for one test.

The ``pgbouncer`` fixture starts Debian's ``pgbouncer`` (CI installs it: .ci/run) on a free
port with ``pool_mode = transaction`` and ``auth_type = trust``, its files in a temporary
directory of its own, and stops it afterwards. PgBouncer refuses to run as root: as root it
is started with ``-u postgres``, which must be able to read that directory. The test is
skipped, saying why, where there is no ``pgbouncer`` binary.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

STOP_TIMEOUT = 10.0


class PgBouncer:
    """One running ``pgbouncer``; ``url`` reaches the test database through it."""

    def __init__(self, database_url: str, directory: Path, binary: str) -> None:
        target = conninfo_to_dict(database_url)
        self.user = str(target.get("user") or "postgres")
        self.dbname = str(target.get("dbname") or self.user)
        self.port = _free_port()
        self.directory = directory
        (directory / "users.txt").write_text(f'"{self.user}" ""\n')
        ini = directory / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host={target.get('host') or '127.0.0.1'} port={target.get('port') or 5432}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {directory / 'users.txt'}\n"
            "pool_mode = transaction\n"
            "max_client_conn = 400\n"
            "default_pool_size = 10\n"
            f"logfile = {directory / 'pgbouncer.log'}\n"
            f"pidfile = {directory / 'pgbouncer.pid'}\n"
        )
        as_root = ["-u", "postgres"] if os.geteuid() == 0 else []
        if as_root:
            shutil.chown(directory, "postgres")
            for path in directory.iterdir():
                shutil.chown(path, "postgres")
        self.process = subprocess.Popen(
            [binary, *as_root, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        self._wait_listening()

    @property
    def url(self) -> str:
        """The pooler's URL, marked as one (``stem_pooler=transaction``)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.dbname}?stem_pooler=transaction"

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.directory / "pgbouncer.log").read_text(errors="replace")[-4000:]
        return ""

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"pgbouncer exited ({self.process.returncode}):\n{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise AssertionError(f"pgbouncer did not listen on port {self.port}:\n{self.log()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # PgBouncer's immediate shutdown
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def pgbouncer(database_url: str) -> Iterator[PgBouncer]:
    """A transaction-mode PgBouncer in front of ``database_url``, stopped afterwards."""
    binary = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
    )
    if binary is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; CI installs it)")
    directory = Path(tempfile.mkdtemp(prefix="stem_pg-pgbouncer-"))
    directory.chmod(0o755)
    try:
        bouncer = PgBouncer(database_url, directory, binary)
        try:
            yield bouncer
        finally:
            bouncer.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
