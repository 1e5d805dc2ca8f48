"""The application module of the worker acceptance tests, and their process helpers.

Worker subprocesses load it with ``--app tests.acceptance.workerapp:app`` (cwd must
be the repository root). Its handlers write to tables the tests create in the
namespace, on their own psycopg connection (``application_name`` = ``stem_test:ledger``,
so that connection-killing tests leave them alone):

* ``ledger (task_id, n, pid, attempt, event, at)`` - what handlers did and when;
* ``dupes (task_id, pid, attempt)`` - ``acc.once`` found its ledger row already there.

The tests enqueue through ``make_app(url, namespace)`` (the ``stem`` fixture of
tests/acceptance/conftest.py) so that per-task options (max_retries, ...), which are
fixed at enqueue time, match the worker's.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.worker.context import TaskContext
from tests.cli_forkserver import ForkedProcess, spawn
from tests.helpers import REPO_ROOT, stem_env, wait_for

LEDGER_APP_NAME = "stem_test:ledger"

# -- the application ----------------------------------------------------------------

_local = threading.local()


def _ledger_conn(url: str) -> psycopg.Connection[Any]:
    """One autocommit connection per handler thread (and per process, after a fork)."""
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed or conn.broken or getattr(_local, "pid", None) != os.getpid():
        conn = psycopg.connect(url, autocommit=True, application_name=LEDGER_APP_NAME)
        _local.conn = conn
        _local.pid = os.getpid()
    return conn


def _table(stem: Stem, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(stem.namespace), sql.Identifier(name))


def _log(stem: Stem, ctx: TaskContext, n: int | None, event: str) -> None:
    _ledger_conn(stem.url).execute(
        sql.SQL("INSERT INTO {} (task_id, n, pid, attempt, event) VALUES (%s, %s, %s, %s, %s)").format(
            _table(stem, "ledger")
        ),
        (ctx.task_id, n, os.getpid(), ctx.attempt, event),
    )


def make_app(url: str | None, namespace: str | None) -> Stem:
    """A Stem application with the acceptance tasks registered.

    Handlers read ``stem.namespace`` when they run, so the worker CLI's
    ``--namespace`` (which overwrites it) is honoured.
    """
    stem = Stem(url, namespace=namespace, config=StemConfig())

    @stem.task(name="acc.step")
    def step(
        ctx: TaskContext,
        n: int | None = None,
        sleep: float = 0.0,
        sleeps: Sequence[float] | None = None,
    ) -> dict[str, int]:
        """Ledger 'started', sleep (``sleeps[attempt-1]`` if given), ledger 'finished'."""
        _log(stem, ctx, n, "started")
        seconds = sleeps[ctx.attempt - 1] if sleeps and ctx.attempt <= len(sleeps) else sleep
        if seconds:
            time.sleep(seconds)
        _log(stem, ctx, n, "finished")
        return {"pid": os.getpid(), "attempt": ctx.attempt}

    @stem.task(name="acc.once")
    def once(ctx: TaskContext, n: int) -> int:
        """Commit one ledger row; a second run of the same job shows up in ``dupes``."""
        conn = _ledger_conn(stem.url)
        try:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (task_id, n, pid, attempt, event) VALUES (%s, %s, %s, %s, 'done')"
                ).format(_table(stem, "ledger")),
                (ctx.task_id, n, os.getpid(), ctx.attempt),
            )
        except pg_errors.UniqueViolation:
            conn.execute(
                sql.SQL("INSERT INTO {} (task_id, pid, attempt) VALUES (%s, %s, %s)").format(
                    _table(stem, "dupes")
                ),
                (ctx.task_id, os.getpid(), ctx.attempt),
            )
            raise
        return n

    @stem.task(name="acc.loop")
    async def loop_module() -> str:
        """The module of the event loop the worker runs its async handlers on."""
        return type(asyncio.get_running_loop()).__module__

    @stem.task(name="acc.fail_always", max_retries=2, retry_backoff=0.2, retry_jitter=False)
    def fail_always(ctx: TaskContext) -> None:
        _log(stem, ctx, None, "started")
        raise RuntimeError(f"boom on attempt {ctx.attempt}")

    return stem


app = (
    make_app(os.environ["STEM_BROKER_URL"], os.environ.get("STEM_NAMESPACE"))
    if os.environ.get("STEM_BROKER_URL")
    else None
)


# -- helpers for the tests ----------------------------------------------------------


def create_tables(db: psycopg.Connection[Any], namespace: str, *, unique: bool = False) -> None:
    ns = sql.Identifier(namespace)
    db.execute(
        sql.SQL(
            "CREATE TABLE {}.ledger (task_id text {}, n int, pid int, attempt int, event text,"
            " at timestamptz NOT NULL DEFAULT clock_timestamp())"
        ).format(ns, sql.SQL("UNIQUE" if unique else ""))
    )
    db.execute(
        sql.SQL(
            "CREATE TABLE {}.dupes (task_id text, pid int, attempt int,"
            " at timestamptz NOT NULL DEFAULT clock_timestamp())"
        ).format(ns)
    )


@contextlib.contextmanager
def ledger_app(
    make: Callable[[str, str], Stem], url: str, namespace: str, db: psycopg.Connection[Any]
) -> Iterator[Stem]:
    """The application ``make`` builds on ``namespace``, with the ledger tables created; closed after."""
    create_tables(db, namespace)
    application = make(url, namespace)
    try:
        yield application
    finally:
        application.close()


def query(
    db: psycopg.Connection[Any], namespace: str, text: str, params: Sequence[Any] = ()
) -> list[tuple[Any, ...]]:
    """Run ``text`` with ``{ns}`` replaced by the quoted namespace; all rows."""
    statement = sql.SQL(text).format(ns=sql.Identifier(namespace))
    cur = db.execute(statement, params)
    return cur.fetchall() if cur.description else []


def scalar(db: psycopg.Connection[Any], namespace: str, text: str, params: Sequence[Any] = ()) -> Any:
    rows = query(db, namespace, text, params)
    return rows[0][0] if rows else None


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of ``pid``'s sockets (Linux /proc)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[9]) in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def worker_pid(worker_id: str | None) -> int | None:
    """The pid inside a worker id ``host.pid.hex`` (``host.pid.hex-slot`` for children)."""
    if not worker_id:
        return None
    parts = worker_id.rsplit(".", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


class WorkerProcess:
    """One ``python -m stem_pg worker run`` process (its own session, so its group can be killed)."""

    def __init__(self, popen: subprocess.Popen[bytes] | ForkedProcess, log_path: Path) -> None:
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def log(self, tail: int | None = 4000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
            return text if tail is None else text[-tail:]
        except OSError:
            return ""

    def kill_group(self) -> None:
        """SIGKILL the whole process group (forked children too), even a stopped one."""
        for signum in (signal.SIGKILL, signal.SIGCONT):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)


class Workers:
    """Starts worker processes and kills every one of them in ``cleanup()``."""

    def __init__(self, url: str, namespace: str, log_dir: Path) -> None:
        self.url = url
        self.namespace = namespace
        self.log_dir = log_dir
        self.started: list[WorkerProcess] = []
        atexit.register(self.cleanup)

    def start(
        self,
        *,
        processes: int = 1,
        concurrency: int = 10,
        lease: float = 2.0,
        poll_interval: float = 0.2,
        extra: Sequence[str] = (),
        app: str = "tests.acceptance.workerapp:app",
        namespace: str | None = None,
        env: dict[str, str] | None = None,
        real_process: bool = False,
    ) -> WorkerProcess:
        """``env``: more environment variables for the worker (STEM_SIGNING_KEYS, ...).

        The worker is forked from the pre-imported server of tests/cli_forkserver.py (a process
        of its own, in a session of its own, a second or two sooner); ``real_process`` starts a
        fresh interpreter instead."""
        env = stem_env(STEM_BROKER_URL=self.url, PYTHONUNBUFFERED="1", **(env or {}))
        log_path = self.log_dir / f"worker-{len(self.started)}.log"
        args = [
            sys.executable, "-m", "stem_pg", "worker", "run",
            "--app", app,
            "--namespace", namespace or self.namespace,
            "--processes", str(processes),
            "--concurrency", str(concurrency),
            "--lease", str(lease),
            "--poll-interval", str(poll_interval),
            *extra,
        ]  # fmt: skip
        popen: subprocess.Popen[bytes] | ForkedProcess
        with log_path.open("wb") as log, open(os.devnull, "rb") as stdin:
            if real_process:
                popen = subprocess.Popen(
                    args, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            else:
                popen = spawn(
                    args[3:], env=env, cwd=REPO_ROOT, stdin=stdin.fileno(), stdout=log.fileno(),
                    stderr=log.fileno(), new_session=True,
                )  # fmt: skip
        proc = WorkerProcess(popen, log_path)
        self.started.append(proc)
        return proc

    def logs(self, tail: int | None = 4000) -> str:
        return "\n".join(f"--- {p.log_path.name} (pid {p.pid}) ---\n{p.log(tail)}" for p in self.started)

    def cleanup(self) -> None:
        for proc in self.started:
            proc.kill_group()


def registered_pids(db: psycopg.Connection[Any], namespace: str) -> set[int]:
    """Pids of workers registered and not stopped."""
    rows = query(db, namespace, "SELECT pid FROM {ns}.workers WHERE stopped_at IS NULL")
    return {int(r[0]) for r in rows}


def wait_registered(
    db: psycopg.Connection[Any], namespace: str, pids: set[int], timeout: float = 15.0
) -> None:
    wait_for(lambda: pids <= registered_pids(db, namespace), timeout, f"workers {sorted(pids)} to register")
