"""What every benchmark shares: the probe tasks report through, worker processes,
RSS sampling, statistics and the JSON / Markdown output.

Handlers report to the harness over a Unix datagram socket (``BENCH_PROBE_SOCK``):

* ``C pid count first last``: a running tally of handler starts in one worker
  process (sent at most every ``REPORT_EVERY`` seconds), so throughput is timed
  from the first handler start to the last one, without polling the database;
* ``L t_enqueue t_start``: one latency sample, sent as the handler starts.

The same probe serves stem_pg and pgqueuer, so both are timed the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = Path(__file__).resolve().parent / "out"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/bench_stem"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_PGQ_DSN = "postgresql://postgres@127.0.0.1:5432/bench_pgq"
PROBE_ENV = "BENCH_PROBE_SOCK"
REPORT_EVERY = 0.05


# -- worker side ---------------------------------------------------------------------


class Probe:
    """Lives in a worker process; counts handler starts and sends latency samples.

    Created at import time, possibly before a fork: the socket is opened lazily
    per process id. ``started()`` from the event loop or from handler threads (blocking
    handlers).
    """

    def __init__(self) -> None:
        self.path = os.environ.get(PROBE_ENV)
        self._pid = -1
        self._sock: socket.socket | None = None
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self._scheduled = False
        self._lock = threading.Lock()

    def _socket(self) -> socket.socket | None:
        if self.path is None:
            return None
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
            self.count, self.first, self.last, self._scheduled = 0, 0.0, 0.0, False
        return self._sock

    def _send(self, message: str) -> None:
        sock = self._socket()
        if sock is None or self.path is None:
            return
        with contextlib.suppress(OSError):
            sock.sendto(message.encode(), self.path)

    def started(self) -> None:
        """One handler started (throughput runs)."""
        with self._lock:
            self._started()

    def _started(self) -> None:
        now = time.time()
        self._socket()
        if not self.count:
            self.first = now
        self.count += 1
        self.last = now
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_later(REPORT_EVERY, self._report)
            except RuntimeError:  # a blocking handler, in a worker thread: a timer thread reports
                timer = threading.Timer(REPORT_EVERY, self._report)
                timer.daemon = True
                timer.start()

    def _report(self) -> None:
        with self._lock:
            self._scheduled = False
            self._send(f"C {os.getpid()} {self.count} {self.first!r} {self.last!r}")

    def latency(self, enqueued_at: float) -> None:
        """One latency sample: the handler starts now."""
        now = time.time()
        self._send(f"L {enqueued_at!r} {now!r}")


PROBE = Probe()


def spend_cpu(ms: float) -> None:
    """Spend ``ms`` milliseconds of this thread's CPU time (the CPU-bound benchmark task)."""
    until = time.thread_time() + ms / 1000
    while time.thread_time() < until:
        pass


# -- harness side --------------------------------------------------------------------


class Collector:
    """The harness end of the probe socket."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="stem-bench-")
        self.path = os.path.join(self._dir, "probe.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(self.path)
        self.tallies: dict[int, tuple[int, float, float]] = {}

    def recv(self, timeout: float) -> list[str] | None:
        """The next message's fields, or None after ``timeout`` seconds."""
        self.sock.settimeout(max(timeout, 1e-4))
        try:
            data = self.sock.recv(256)
        except TimeoutError:
            return None
        fields = data.decode().split()
        if fields and fields[0] == "C":
            self.tallies[int(fields[1])] = (int(fields[2]), float(fields[3]), float(fields[4]))
        return fields

    def drain(self) -> None:
        """Forget anything queued (left-overs of a warm-up)."""
        while self.recv(0.0001) is not None:
            pass

    @property
    def total(self) -> int:
        return sum(c for c, _, _ in self.tallies.values())

    def window(self) -> tuple[float, float]:
        """First handler start and last handler start over all worker processes."""
        firsts = [f for c, f, _ in self.tallies.values() if c]
        lasts = [la for c, _, la in self.tallies.values() if c]
        return (min(firsts), max(lasts)) if firsts else (0.0, 0.0)

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def wait_for_count(
    collector: Collector,
    n: int,
    timeout: float,
    procs: Sequence[Proc],
    label: str,
    tick: Callable[[], None] | None = None,
    tick_every: float = 0.5,
) -> tuple[int, float, float]:
    """Wait until the workers report ``n`` handler starts; returns (count, first, last).

    ``tick`` runs about every ``tick_every`` seconds meanwhile (RSS sampling)."""
    deadline = time.monotonic() + timeout
    next_tick = 0.0
    while collector.total < n:
        now = time.monotonic()
        if now > deadline:
            raise BenchError(f"{label}: only {collector.total}/{n} jobs started within {timeout:.0f}s")
        if now >= next_tick:
            next_tick = now + tick_every
            for p in procs:
                p.check_alive()
            if tick is not None:
                tick()
        collector.recv(0.1)
    first, last = collector.window()
    return collector.total, first, last


def measure_drain(
    collector: Collector,
    procs: Sequence[Proc],
    jobs: int,
    timeout: float,
    label: str,
    dsn: str,
    tick: Callable[[], None] | None = None,
    meter: Any = None,
) -> dict[str, float]:
    """Wait for ``jobs`` handler starts; the rate, and CPU per job from the first report on.

    ``meter``: something with CpuMeter's start/stop/per_job_us/started (default: a
    CpuMeter on the workers and the Postgres backends of ``dsn``)."""
    meter = meter or CpuMeter(dsn, procs)

    def on_tick() -> None:
        if not meter.started and collector.total > 0:
            meter.start(collector.total)
        if tick is not None:
            tick()

    count, first, last = wait_for_count(collector, jobs, timeout, procs, label, on_tick, 0.1)
    meter.stop()
    return {
        "started": count,
        "seconds": last - first,
        "jobs_per_s": count / (last - first) if last > first else float("nan"),
        **(meter.per_job_us(count) if meter.started else {}),
        "cpu_pressure_avg10": cpu_pressure() or float("nan"),
        "load_avg_1m": os.getloadavg()[0],
    }


class AutovacuumEmulation:
    """Does what default autovacuum would, when the server runs with ``autovacuum = off``.

    The targets are for a Postgres with default settings, but this machine's server
    has autovacuum off (conf.d/90-ci.conf). Every ``naptime`` seconds (the default
    1 min; first check after ``first``), VACUUM (ANALYZE) the given tables whose dead
    tuples passed their autovacuum threshold (their own reloptions, else the
    defaults), cost-limited like an autovacuum worker (2 ms / 200). Does nothing when
    the server's autovacuum is on. Use as a context manager around a drain.
    """

    def __init__(
        self,
        dsn: str,
        tables: Sequence[str],
        *,
        naptime: float = 60.0,
        first: float = 30.0,
        enabled: bool = True,
    ) -> None:
        import threading

        self.enabled = enabled
        self.dsn = dsn
        self.tables = list(tables)
        self.naptime = naptime
        self.first = first
        self.events: list[dict[str, Any]] = []
        self.active = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="autovacuum-emulation", daemon=True)
        self._conn: Any = None

    def __enter__(self) -> AutovacuumEmulation:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute("SHOW autovacuum").fetchone()
        self.active = self.enabled and bool(row and row[0] == "off")
        if self.active:
            self._started = time.monotonic()
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.cancel()
        if self._thread.is_alive():
            self._thread.join(30)

    def _run(self) -> None:
        import psycopg

        wait = self.first
        while not self._stop.wait(wait):
            wait = self.naptime
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    self._conn = conn
                    conn.execute("SET vacuum_cost_delay = '2ms'")
                    conn.execute("SET vacuum_cost_limit = 200")
                    for table in self.tables:
                        if self._stop.is_set():
                            break
                        self._maybe_vacuum(conn, table)
            except Exception as exc:  # cancelled on exit, or the table is gone
                if not self._stop.is_set():
                    self.events.append({"error": str(exc)})
            finally:
                self._conn = None

    def _maybe_vacuum(self, conn: Any, table: str) -> None:
        row = conn.execute(
            """
            SELECT s.n_dead_tup, s.n_mod_since_analyze, greatest(c.reltuples, 0),
                   coalesce(c.reloptions, '{}')
            FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
            WHERE s.relid = %s::regclass
            """,
            (table,),
        ).fetchone()
        if row is None:
            return
        dead, modified, tuples, reloptions = row
        options = dict(o.split("=", 1) for o in reloptions)

        def opt(name: str, default: float) -> float:
            return float(options.get(name, default))

        vacuum_at = (
            opt("autovacuum_vacuum_threshold", 50) + opt("autovacuum_vacuum_scale_factor", 0.2) * tuples
        )
        analyze_at = (
            opt("autovacuum_analyze_threshold", 50) + opt("autovacuum_analyze_scale_factor", 0.1) * tuples
        )
        if dead <= vacuum_at and modified <= analyze_at:
            return
        command = "VACUUM (ANALYZE)" if modified > analyze_at else "VACUUM"
        if dead <= vacuum_at:
            command = "ANALYZE"
        start = time.monotonic()
        conn.execute(f"{command} {table}")
        self.events.append(
            {
                "at_s": round(start - self._started, 1),
                "table": table,
                "command": command,
                "dead_tuples": dead,
                "seconds": round(time.monotonic() - start, 2),
            }
        )


def ensure_database(dsn: str, admin_dsn: str = ADMIN_DSN) -> None:
    """Create the database ``dsn`` names if it is missing (each system gets its own)."""
    import psycopg
    from psycopg import sql

    name = psycopg.conninfo.conninfo_to_dict(dsn).get("dbname")
    if not name:
        raise BenchError(f"{dsn!r} names no database")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(name))))


def checkpoint(dsn: str) -> None:
    """Write out the dirty buffers the previous phase left, so its checkpoint I/O does
    not land in the fsyncs of the next measurement (both systems get one after reset).
    Skipped without the right to run CHECKPOINT."""
    import psycopg

    no_right = psycopg.errors.InsufficientPrivilege
    with psycopg.connect(dsn, autocommit=True) as conn, contextlib.suppress(no_right):
        conn.execute("CHECKPOINT")


class BenchError(RuntimeError):
    """A benchmark could not complete (timeout, a worker died...)."""


# -- processes -----------------------------------------------------------------------

_LIVE: dict[int, Proc] = {}


@dataclass
class Proc:
    """A worker process we started, in its own session so its children stop with it."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise BenchError(f"{self.name} (pid {self.pid}) exited with {code}:\n{tail}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (graceful), then SIGKILL to its process group after ``timeout``."""
        _LIVE.pop(self.pid, None)
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(5)
        # Forked children of a supervisor that died hard: their group is ours.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        return self.popen.returncode

    def worker_pids(self) -> list[int]:
        """The processes doing the work: forked children if any, else the process itself."""
        kids = children(self.pid)
        return kids or [self.pid]


def spawn(name: str, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path = ROOT) -> Proc:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    log_path = OUT_DIR / f"{name}.log"
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    full_env["PYTHONUNBUFFERED"] = "1"
    if env:
        full_env.update(env)
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    proc = Proc(name, popen, log_path)
    _LIVE[proc.pid] = proc
    return proc


def stop_all() -> None:
    """Stop every worker still running (called on exit and on errors)."""
    for proc in list(_LIVE.values()):
        proc.stop(timeout=10.0)


@contextlib.contextmanager
def running(procs: list[Proc]) -> Iterator[list[Proc]]:
    try:
        yield procs
    finally:
        for p in procs:
            p.stop()


def install_signal_cleanup() -> None:
    """SIGTERM/SIGHUP to the harness stop the workers it started, like Ctrl-C does."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                kids.extend(int(k) for k in f.read().split())
    return kids


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM / Threads of a process, in kB (Threads: a count)."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                found[key] = int(value.split()[0])
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_pids(dsn: str) -> list[int]:
    """Client backends connected to the database of ``dsn`` (but not this query's)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(r[0]) for r in rows]


class CpuMeter:
    """CPU time spent by the worker processes and their Postgres backends between
    ``start()`` and ``stop()``: a cost per job that other load on the machine barely
    changes (unlike jobs/s). Backends are found by database, so each system under
    test must have its database to itself."""

    def __init__(self, dsn: str, procs: Sequence[Proc]) -> None:
        self.dsn = dsn
        self.procs = procs
        self.started = False
        self.jobs_at_start = 0
        self._start: dict[str, dict[int, float]] = {}
        self.worker_s = 0.0
        self.postgres_s = 0.0

    def _snapshot(self) -> dict[str, dict[int, float]]:
        workers = [pid for p in self.procs for pid in p.worker_pids()]
        return {
            "workers": {pid: cpu_seconds(pid) for pid in workers},
            "postgres": {pid: cpu_seconds(pid) for pid in backend_pids(self.dsn)},
        }

    def start(self, jobs_done: int) -> None:
        self._start = self._snapshot()
        self.jobs_at_start = jobs_done
        self.started = True

    def stop(self) -> None:
        end = self._snapshot()
        for kind, attr in (("workers", "worker_s"), ("postgres", "postgres_s")):
            before = self._start.get(kind, {})
            setattr(self, attr, sum(t - before.get(pid, 0.0) for pid, t in end[kind].items()))

    def per_job_us(self, jobs: int) -> dict[str, float]:
        n = max(1, jobs - self.jobs_at_start)
        return {
            "cpu_worker_us_per_job": self.worker_s / n * 1e6,
            "cpu_postgres_us_per_job": self.postgres_s / n * 1e6,
            "cpu_total_us_per_job": (self.worker_s + self.postgres_s) / n * 1e6,
        }


def cpu_pressure() -> float | None:
    """/proc/pressure/cpu "some avg10": % of the last 10 s some task waited for a CPU."""
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/pressure/cpu") as f:
        return float(f.readline().split()[1].split("=")[1])
    return None


# -- statistics and output -----------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation): p99 of 1000 is the 990th value."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.4999)))
    return ordered[rank - 1]


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(samples_ms),
        "p50_ms": percentile(samples_ms, 50),
        "p90_ms": percentile(samples_ms, 90),
        "p99_ms": percentile(samples_ms, 99),
        "max_ms": max(samples_ms) if samples_ms else float("nan"),
        "mean_ms": statistics.fmean(samples_ms) if samples_ms else float("nan"),
    }


def machine() -> dict[str, Any]:
    pg = ""
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            pg = str(row[0]) if row else ""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "stem_pg_source_sha256": source_digest(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgres": pg,
        "load_avg": os.getloadavg(),
    }


def source_digest() -> str:
    """A digest of stem_pg's source and SQL: which code a result was measured on."""
    import hashlib

    digest = hashlib.sha256()
    for folder in ("stem_pg", "sql", "migrations"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".sql") and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def write_json(name: str, payload: Mapping[str, Any]) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    data = {"machine": machine(), **payload}
    text = json.dumps(data, indent=2, default=str)
    path = OUT_DIR / f"{name}-{stamp}.json"
    path.write_text(text)
    (OUT_DIR / f"{name}-latest.json").write_text(text)
    return path


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([fmt(c) for c in cells])

    def markdown(self) -> str:
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) for i, h in enumerate(self.headers)]
        line = "| " + " | ".join(h.ljust(w) for h, w in zip(self.headers, widths, strict=True)) + " |"
        sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        body = [
            "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in self.rows
        ]
        return "\n".join([line, sep, *body])


def fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(a: float | None, b: float | None) -> float | None:
    if not a or not b:
        return None
    return a / b


def chunks(n: int, size: int) -> Iterable[int]:
    """Sizes of the batches that make up ``n`` items."""
    while n > 0:
        yield min(size, n)
        n -= size


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


#: ``--signing``: the benchmark apps (producer and workers) sign and verify with this key.
SIGNING_ENV = "BENCH_SIGNING"
SIGNING_KEYS = {"bench": "bench-hmac-secret-0123456789abcdef"}


def bench_signing() -> Any:
    """The ``Signing`` of the benchmark apps when BENCH_SIGNING is set (``--signing``), else None."""
    if not os.environ.get(SIGNING_ENV):
        return None
    from stem_pg.core.signing import Signing

    return Signing.from_spec(SIGNING_KEYS)
