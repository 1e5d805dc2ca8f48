"""A real ``stem dashboard`` process for the dashboard's acceptance tests."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO_ROOT, stem_env, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A ``stem dashboard`` process; ``url`` is its base, ``log`` its output."""

    def __init__(self, database_url: str, namespace: str, log: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [
            sys.executable,
            "-m",
            "stem_pg",
            "dashboard",
            "--namespace",
            namespace,
            "--port",
            str(self.port),
            *args,
        ]
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=stem_env(STEM_BROKER_URL=database_url, **env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._up, timeout=20, what=f"the dashboard on port {self.port} ({log})")

    def _up(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
