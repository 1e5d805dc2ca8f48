"""A private embedded PostgreSQL, so `stem demo` and the tests need zero configuration.

Installing and configuring PostgreSQL is the largest hurdle for a newcomer, so when no database
URL is configured stem_pg starts its own server: a private data directory, trust authentication,
listening on 127.0.0.1 only, on a stable port (54329, or a free one if another program holds it;
remembered in the directory).  `embedded_url()` leaves it running so reruns are fast; a later
start on the same directory reuses it (found via postmaster.pid); `stem embedded stop` stops it.

Binaries: a local PostgreSQL (`pg_ctl` on PATH, `pg_config --bindir`, the newest
/usr/lib/postgresql/*/bin), else the optional `pgserver` wheel (the `embedded` extra), whose
pginstall/bin is located without importing it; both go through the same initdb/pg_ctl code.

PostgreSQL refuses to run as root, so as root (containers, CI) it runs as the `postgres` system
user: the base directory is chowned to it and ancestors it cannot search get o+x (search, not
read).  Root's default is /var/tmp/stem_pg-embedded, as root's home is usually 0700 (/var/tmp
outlives reboots, unlike /tmp); a symlinked or foreign-owned base directory is refused.
Everyone else's is $XDG_DATA_HOME/stem_pg/embedded (~/.local/share/stem_pg/embedded).

Layout: pgdata/ (the cluster), run/ (unix socket, only if its path fits the 107-byte limit;
else TCP only), server.log, lock (serialises starts), port (the port to use again).  Trust
auth lets any local user in as superuser: for demos and tests only.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from stem_pg.core.errors import ConfigError

log = logging.getLogger(__name__)

SERVER_USER = "postgres"  # the system user the server runs as when we are root
DB_NAME = "stem"
SUPERUSER = "postgres"
ROOT_DEFAULT_DIR = Path("/var/tmp/stem_pg-embedded")
DEFAULT_PORT = 54329  # next to 5432, and stable: an exported STEM_BROKER_URL keeps working
PORT_FILE = "port"
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes including the trailing NUL
_TIMEOUT = 120.0
_SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")


def server_url(port: int) -> str:
    """The URL of the `stem` database of an embedded server listening on `port`."""
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{DB_NAME}"


def _has_server(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / name, os.X_OK) for name in _SERVER_BINARIES)


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name))


def local_bin_dir() -> Path | None:
    """The directory of a locally installed PostgreSQL server, if any."""
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=True
            )
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("pg_config --bindir failed: %s", exc)
    debian = Path("/usr/lib/postgresql").glob("*/bin")
    candidates.extend(sorted(debian, key=_version_key, reverse=True))
    return next((c for c in candidates if _has_server(c)), None)


def pgserver_bin_dir() -> Path | None:
    """The binaries shipped in the `pgserver` wheel (pgserver/pginstall/bin), if installed."""
    spec = importlib.util.find_spec("pgserver")  # locate only: importing it has side effects
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bin_dir if _has_server(bin_dir) else None


def find_bin_dir() -> Path:
    """The first available source of server binaries: local PostgreSQL, then pgserver."""
    for source in (local_bin_dir, pgserver_bin_dir):
        found = source()
        if found is not None:
            log.debug("using PostgreSQL binaries from %s", found)
            return found
    raise ConfigError(
        "no database URL is configured and no PostgreSQL server binaries were found for the "
        "embedded server; either install PostgreSQL (initdb, pg_ctl and postgres on PATH, "
        "found by pg_config, or under /usr/lib/postgresql/*/bin, e.g. `apt-get install "
        "postgresql`) or install the pgserver wheel (`pip install 'stem_pg[embedded]'`)"
    )


def _server_user() -> pwd.struct_passwd | None:
    """The user to run the server as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise ConfigError(
            f"running as root, PostgreSQL refuses to run as root and there is no "
            f"{SERVER_USER!r} system user to run it as; create one (useradd --system "
            f"{SERVER_USER}) or run as a non-root user"
        ) from None


def default_dir() -> Path:
    """$STEM_EMBEDDED_DIR, else $XDG_DATA_HOME/stem_pg/embedded (~/.local/share/stem_pg/embedded;
    root: /var/tmp/stem_pg-embedded)."""
    env = os.environ.get("STEM_EMBEDDED_DIR")
    if env:
        return Path(env).expanduser().resolve()
    if os.geteuid() == 0:
        return ROOT_DEFAULT_DIR
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser().resolve() / "stem_pg" / "embedded"


def _can_search(path: Path, user: pwd.struct_passwd) -> bool:
    st = path.stat()
    if st.st_uid == user.pw_uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in os.getgrouplist(user.pw_name, user.pw_gid):
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _prepare_dir(base: Path, user: pwd.struct_passwd | None) -> None:
    """Create the base directory and, as root, hand it to the server user."""
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    if user is not None:
        st = base.lstat()
        if stat.S_ISLNK(st.st_mode) or st.st_uid not in (0, user.pw_uid):
            raise ConfigError(
                f"refusing embedded PostgreSQL directory {base}: it is a symlink or owned by "
                f"uid {st.st_uid} (expected root or {user.pw_name})"
            )
    (base / "run").mkdir(mode=0o700, exist_ok=True)
    if user is None:
        return
    for path in (base, base / "run"):
        os.chown(path, user.pw_uid, user.pw_gid)


def _grant_search(base: Path, user: pwd.struct_passwd | None) -> None:
    """Let the server user reach `base`: o+x on ancestors it cannot search.

    Done right before initdb/pg_ctl run, as others may take it back (pytest resets its
    /tmp/pytest-of-root to 0700 at each session start); a started server no longer needs it.
    """
    if user is None:
        return
    for parent in reversed(base.parents):
        if not _can_search(parent, user):
            log.warning("granting o+x on %s so %s can reach %s", parent, user.pw_name, base)
            parent.chmod(parent.stat().st_mode | stat.S_IXOTH)


def _run(args: list[str], user: pwd.struct_passwd | None, what: str) -> str:
    """Run a PostgreSQL program (as `user` when given); its output, or ConfigError."""
    as_user = f" as user {user.pw_name}" if user else ""
    with tempfile.TemporaryFile("w+") as out:  # a pipe could be inherited by the postmaster
        try:
            proc = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                cwd="/",
                timeout=_TIMEOUT,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ConfigError(f"{what} failed: cannot run {args[0]}{as_user}: {exc}") from exc
        out.seek(0)
        output = out.read()
    if proc.returncode != 0:
        raise ConfigError(f"{what} failed (exit {proc.returncode}{as_user}):\n{output.strip()}")
    return output


def _postmaster(pgdata: Path) -> tuple[int, int] | None:
    """(pid, port) of a live server on `pgdata`, read from postmaster.pid; None if none."""
    pid_file = pgdata / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 4 or not lines[0].strip().isdigit() or not lines[3].strip().isdigit():
        return None
    pid, port = int(lines[0]), int(lines[3])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by someone else
    comm = Path(f"/proc/{pid}/comm")  # Linux: is that pid still a postmaster?
    if comm.exists() and not comm.read_text().startswith("postgres"):
        log.warning("removing stale %s: its pid now belongs to another program", pid_file)
        pid_file.unlink()  # else the postmaster itself would refuse to start
        return None
    return pid, port


def _stop_postmaster(pgdata: Path, log_file: Path) -> None:
    """Fast shutdown, as `pg_ctl stop -m fast` does, without needing to reach `pgdata`
    as the server user: signal the postmaster and wait for it to remove postmaster.pid."""
    running = _postmaster(pgdata)
    if running is None:
        return
    try:
        os.kill(running[0], signal.SIGINT)
    except ProcessLookupError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot stop embedded PostgreSQL in {pgdata}: {exc}") from exc
    deadline = time.monotonic() + _TIMEOUT
    while _postmaster(pgdata) is not None:
        if time.monotonic() > deadline:
            tail = _log_tail(log_file)
            raise ConfigError(f"embedded PostgreSQL in {pgdata} did not stop:\n{tail}")
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    """Whether the server could listen on `port`: as PostgreSQL does, with SO_REUSEADDR, so
    connections of a stopped server lingering in TIME_WAIT do not count as taking it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def remembered_port(data_dir: Path) -> int | None:
    """The port the server in `data_dir` last started on, if it started there before."""
    try:
        text = (data_dir / PORT_FILE).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


def _stable_port(data_dir: Path) -> int:
    """The remembered port, else DEFAULT_PORT; a free one if another program holds that."""
    wanted = remembered_port(data_dir) or DEFAULT_PORT
    if _port_is_free(wanted):
        return wanted
    port = _free_port()
    log.info("port %d is taken by another program; the embedded PostgreSQL uses %d", wanted, port)
    return port


def _log_tail(log_file: Path, offset: int = 0, lines: int = 25) -> str:
    try:
        with log_file.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


@contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    with lock_file.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ensure_database(port: int) -> None:
    url = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            query = "select 1 from pg_database where datname = %s"
            if conn.execute(query, (DB_NAME,)).fetchone() is None:
                conn.execute("create database stem")
                log.info("created database %s on embedded PostgreSQL", DB_NAME)
    except psycopg.Error as exc:
        raise ConfigError(f"embedded PostgreSQL on 127.0.0.1:{port} is not usable: {exc}") from exc


class EmbeddedPostgres:
    """A private PostgreSQL server in `data_dir`, started on demand; see the module docstring."""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        port: int | None = None,
        bin_dir: Path | None = None,
        listen: str = "127.0.0.1",
    ) -> None:
        """``listen``: the server's ``listen_addresses`` (127.0.0.1 only unless a test gives
        more, e.g. the address of a bridge its network namespaces reach it on)."""
        self.listen = listen
        self.data_dir = Path(data_dir).expanduser().resolve() if data_dir else default_dir()
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.data_dir / "server.log"
        self._port = port
        self._bin_dir = bin_dir
        self._user: pwd.struct_passwd | None = None
        self._url: str | None = None
        self._started = False  # True only if this object started the server

    @property
    def reused(self) -> bool:
        """Whether `start()` found the server already running (and so did not start it)."""
        return self._url is not None and not self._started

    def running(self) -> tuple[int, int] | None:
        """(pid, port) of the server on this directory if one runs, started by anyone."""
        return _postmaster(self.pgdata)

    @property
    def url(self) -> str:
        if self._url is None:
            raise ConfigError(f"embedded PostgreSQL in {self.data_dir} is not started")
        return self._url

    def start(self) -> str:
        """Start (or reuse) the server and return the URL of its `stem` database."""
        if self._url is not None:
            return self._url
        self._user = _server_user()
        _prepare_dir(self.data_dir, self._user)
        with _locked(self.data_dir / "lock"):
            running = _postmaster(self.pgdata)
            if running is None:
                bin_dir = self._bin_dir = self._bin_dir or find_bin_dir()
                _grant_search(self.data_dir, self._user)
                self._init_cluster(bin_dir)
                port = self._start_server(bin_dir)
                self._started = True
            else:
                port = running[1]
                log.info("reusing embedded PostgreSQL on port %d (%s)", port, self.pgdata)
            _ensure_database(port)
        self._url = server_url(port)
        return self._url

    def stop(self, *, force: bool = False) -> None:
        """Stop the server if this object started it; `force` also stops one it only reused."""
        started, self._started, self._url = self._started, False, None
        if started or force:
            with _locked(self.data_dir / "lock"):
                _stop_postmaster(self.pgdata, self.log_file)
            log.info("stopped embedded PostgreSQL in %s", self.pgdata)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _init_cluster(self, bin_dir: Path) -> None:
        """Run initdb unless the cluster exists (a cluster of another major version makes the
        start fail, and the log tail in the error says so)."""
        if (self.pgdata / "PG_VERSION").exists():
            return
        log.info("initialising embedded PostgreSQL in %s with %s", self.pgdata, bin_dir)
        initdb = [str(bin_dir / "initdb"), "-D", str(self.pgdata), "-U", SUPERUSER]
        initdb += ["--auth=trust", "--encoding=UTF8", "--no-locale"]
        _run(initdb, self._user, f"initdb of embedded PostgreSQL in {self.pgdata}")

    def _server_options(self, port: int) -> str:
        sockets = str(self.data_dir / "run")
        if len(os.fsencode(sockets)) + len(f"/.s.PGSQL.{port}") > _SOCKET_PATH_MAX:
            log.debug("socket path under %s is too long; serving over TCP only", sockets)
            sockets = ""
        args = ["-p", str(port), "-c", f"listen_addresses={self.listen}", "-c", "max_connections=200"]
        args += ["-c", f"unix_socket_directories={sockets}"]
        return shlex.join(args)  # pg_ctl hands -o to a shell

    def _start_server(self, bin_dir: Path, tries: int = 3, port: int | None = None) -> int:
        """Start the server on its stable port (or a free one), retrying on a free port if
        another process took it meanwhile; remember the port for the next start."""
        port = port or self._port or _stable_port(self.data_dir)
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        args = [str(bin_dir / "pg_ctl"), "start", "-D", str(self.pgdata), "-w", "-t", "60"]
        args += ["-l", str(self.log_file), "-o", self._server_options(port)]
        try:
            _run(args, self._user, f"starting embedded PostgreSQL on port {port}")
        except ConfigError as exc:
            tail = _log_tail(self.log_file, offset)
            if "already in use" in tail and tries > 1 and not self._port:
                log.info("port %d was taken meanwhile; retrying", port)
                return self._start_server(bin_dir, tries - 1, _free_port())
            raise ConfigError(f"{exc}\n--- tail of {self.log_file} ---\n{tail}") from exc
        log.info("started embedded PostgreSQL on 127.0.0.1:%d (%s)", port, self.pgdata)
        (self.data_dir / PORT_FILE).write_text(f"{port}\n")
        return port


def embedded_url(data_dir: Path | None = None) -> str:
    """Start or reuse the embedded server and return its URL; the server is left running."""
    return EmbeddedPostgres(data_dir).start()
