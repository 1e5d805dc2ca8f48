"""``stem`` processes for the tests without paying Python's start-up and imports each time.

A real ``python -m stem_pg`` spends over a second importing (Typer, psycopg, SQLAlchemy,
alembic) before it reads its arguments, and the CLI matrices start hundreds of them. This
server imports all of that once, then forks a child per command: the child is a real process
of its own (its pid, session, file descriptors, signals and exit code are real), that sets the
requested working directory, environment, ``sys.path`` and fresh stdio streams, and runs
``stem_pg`` as ``python -m stem_pg`` does (``runpy``, ``__main__``), exiting the way Python does.

What it cannot show is what an interpreter prints while it starts and imports (a warning at
import time): each CLI matrix keeps real-process cases for that (``run_cli(real_process=True)``).

Protocol, over a Unix socket: the client sends a length-prefixed JSON request (argv, env, cwd,
new_session) with its stdin/stdout/stderr descriptors attached; the server answers
``<pid>\\n`` once forked, and ``<exit code>\\n`` (negative: killed by that signal) when the
child ends. The server exits when its stdin closes (the test process ended).
"""

from __future__ import annotations

import atexit
import contextlib
import faulthandler
import gc
import importlib
import io
import json
import os
import pkgutil
import runpy
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
HEADER = struct.Struct("!I")

# ---------------------------------------------------------------- the server (python -m tests.cli_forkserver)


def preload() -> None:
    """Import what ``stem`` commands import, so that no child has to."""
    import stem_pg

    libraries = ("typer", "typer._adapters", "typer._click.decorators", "pydantic.plugin._loader", "runpy")
    for name in (*libraries, "psycopg", "psycopg_pool", "sqlalchemy", "alembic", "alembic.command"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    for module in pkgutil.walk_packages(stem_pg.__path__, "stem_pg."):
        if module.name != "stem_pg.__main__":  # it runs the CLI
            with contextlib.suppress(Exception):
                importlib.import_module(module.name)
    _build_commands_once()


def _build_commands_once() -> None:
    """Typer turns the app into Click commands on every call, reading each command's
    annotations (most of a second on a busy machine); the children reuse the server's."""
    import typer.main

    from stem_pg.cli import app

    build = typer.main.get_command
    built = build(app)

    def get_command(typer_instance: Any) -> Any:
        return built if typer_instance is app else build(typer_instance)

    typer.main.get_command = get_command


def receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    while len(data) < HEADER.size or len(data) < HEADER.size + HEADER.unpack_from(data)[0]:
        more = conn.recv(1 << 16)
        if not more:
            raise ConnectionError("the client went away mid-request")
        data += more
    return json.loads(data[HEADER.size :]), list(fds)


def serve(path: str) -> tuple[dict[str, Any], list[int]]:
    """Answer requests until stdin closes; returns only in a forked child, with its request."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(sys.stdin, selectors.EVENT_READ, "stdin")
    children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, connection)
    print("ready", flush=True)
    while True:
        for key, _events in selector.select():
            if key.data == "stdin":
                if not os.read(sys.stdin.fileno(), 1024):
                    os.unlink(path)
                    sys.exit(0)
            elif key.data == "accept":
                conn, _ = listener.accept()
                try:
                    request, fds = receive(conn)
                except (ConnectionError, ValueError):
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:  # the child keeps none of the server's descriptors
                    for pidfd, (_pid, other) in children.items():
                        os.close(pidfd)
                        other.close()
                    selector.close()
                    listener.close()
                    conn.close()
                    return request, fds
                for fd in fds:
                    os.close(fd)
                pidfd = os.pidfd_open(pid)
                children[pidfd] = (pid, conn)
                selector.register(pidfd, selectors.EVENT_READ, "child")
                with contextlib.suppress(OSError):
                    conn.sendall(f"{pid}\n".encode())
            else:
                pidfd = key.fd
                pid, conn = children.pop(pidfd)
                selector.unregister(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                with contextlib.suppress(OSError):
                    conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                conn.close()


def become(request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: take the client's stdio, directory, environment and path."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    if request["new_session"]:
        os.setsid()
    os.chdir(request["cwd"])
    base_path = [p for p in sys.path[1:] if p not in _pythonpath(os.environ)]
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    sys.path[:] = [os.getcwd(), *_pythonpath(os.environ), *base_path]
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    streams = {
        "stdin": io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False))),
        "stdout": _writer(1, unbuffered, "strict"),
        "stderr": _writer(2, unbuffered, "backslashreplace", line_buffering=True),
    }
    for name, stream in streams.items():  # new ones, as a fresh interpreter makes them for its fds
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)
    if os.environ.get("PYTHONFAULTHANDLER"):  # stacks on SIGABRT, which a hung worker's test sends
        faulthandler.enable()


def _pythonpath(env: Mapping[str, str]) -> list[str]:
    return [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]


def _writer(fd: int, unbuffered: bool, errors: str, line_buffering: bool = False) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "w", closefd=False)
    line_buffering = line_buffering or raw.isatty()
    stream: Any = raw if unbuffered else io.BufferedWriter(raw)
    return io.TextIOWrapper(
        stream, encoding="utf-8", errors=errors, line_buffering=line_buffering, write_through=unbuffered
    )


def run_stem(args: list[str]) -> int:
    """``python -m stem_pg *args``, ending as the interpreter ends (SystemExit's code, a traceback
    and 1 for an uncaught exception, death by SIGINT for Ctrl-C); returns the exit code."""
    sys.argv = ["stem_pg", *args]
    sys.orig_argv = [sys.executable, "-m", "stem_pg", *args]  # a worker re-executes itself with it
    # A worker runs here rather than exec a lean interpreter: a fork of this server costs
    # 0.2 s where a fresh interpreter costs 1-3 s (test_worker_lean checks the lean process).
    os.environ.setdefault("_STEM_WORKER_IN_PLACE", "1")
    try:
        runpy.run_module("stem_pg", run_name="__main__", alter_sys=True)
        return 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
        return -signal.SIGINT if isinstance(exc, KeyboardInterrupt) else 1


def finish(code: int) -> None:
    """What the interpreter does at exit that anyone could see (join threads, atexit, flush), and
    exit; skipping the teardown of hundreds of modules, which would copy the server's memory."""
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code & 0xFF)


def main() -> None:
    preload()
    gc.freeze()  # the children's collections leave the server's objects (and pages) alone
    request, fds = serve(sys.argv[1])
    become(request, fds)
    finish(run_stem(request["args"]))


# ---------------------------------------------------------------- the client (the test process)


class ForkedProcess:
    """A forked ``stem`` child: pid, poll(), wait(), send_signal(), kill(), like a Popen."""

    def __init__(self, conn: socket.socket, args: Sequence[str]) -> None:
        self.args = list(args)
        self._conn = conn
        self._buffer = b""
        self.returncode: int | None = None
        line = self._line(timeout=30)
        if line is None:
            raise RuntimeError("the stem fork server did not start the command")
        self.pid = int(line)

    def _line(self, timeout: float | None) -> str | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._conn.settimeout(remaining)
            try:
                chunk = self._conn.recv(4096)
            except (TimeoutError, BlockingIOError):
                return None
            if not chunk:
                raise RuntimeError("the stem fork server went away")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def poll(self) -> int | None:
        if self.returncode is None:
            line = self._line(timeout=0)
            if line is not None:
                self.returncode = int(line)
                self._conn.close()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            line = self._line(timeout)
            if line is None:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            self.returncode = int(line)
            self._conn.close()
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _Server:
    _lock = threading.Lock()
    _process: subprocess.Popen[bytes] | None = None
    _path = ""

    @classmethod
    def path(cls) -> str:
        with cls._lock:
            if cls._process is None or cls._process.poll() is not None:
                import tempfile

                cls._path = os.path.join(tempfile.mkdtemp(prefix="stem-forkserver-"), "socket")
                env = {k: v for k, v in os.environ.items() if not k.startswith("STEM_")}
                cls._process = subprocess.Popen(
                    [sys.executable, "-m", "tests.cli_forkserver", cls._path],
                    cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                )  # fmt: skip
                assert cls._process.stdout is not None
                if cls._process.stdout.readline() != b"ready\n":
                    raise RuntimeError("the stem fork server did not start")
                atexit.register(cls._process.stdin.close)  # type: ignore[union-attr]
            return cls._path


def spawn(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | str,
    stdin: int,
    stdout: int,
    stderr: int,
    new_session: bool = False,
) -> ForkedProcess:
    """Start ``python -m stem_pg *args`` as a forked child; the descriptors are the child's stdio."""
    payload = json.dumps(
        {"args": list(args), "env": dict(env), "cwd": str(cwd), "new_session": new_session}
    ).encode()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(_Server.path())
    message = HEADER.pack(len(payload)) + payload
    sent = socket.send_fds(conn, [message[: 1 << 15]], [stdin, stdout, stderr])
    conn.sendall(message[sent:])
    return ForkedProcess(conn, args)


if __name__ == "__main__":
    main()
