"""What ``stem embedded status|stop|reset`` report about, and do to, the embedded server's directory."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from stem_pg.dev.embedded import PORT_FILE, EmbeddedPostgres, remembered_port, server_url

log = logging.getLogger(__name__)

#: What the embedded server keeps in its directory: all a reset removes (the directory itself
#: only if nothing else is left in it, in case STEM_EMBEDDED_DIR names a directory of other use).
OWNED = ("pgdata", "run", "server.log", "lock", PORT_FILE)


@dataclass(frozen=True)
class EmbeddedStatus:
    data_dir: Path
    running: bool
    pid: int | None
    port: int | None  # where it listens, else where it listened last
    url: str | None
    size_bytes: int  # on disk, the whole directory

    def as_dict(self) -> dict[str, object]:
        return {**self.__dict__, "data_dir": str(self.data_dir)}


def disk_usage(path: Path) -> int:
    """Bytes the files under `path` take on disk (0 if it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue  # a file the server removed meanwhile
    return total


def embedded_status(server: EmbeddedPostgres) -> EmbeddedStatus:
    running = server.running()
    port = running[1] if running else remembered_port(server.data_dir)
    return EmbeddedStatus(
        data_dir=server.data_dir,
        running=running is not None,
        pid=running[0] if running else None,
        port=port,
        url=server_url(port) if port else None,
        size_bytes=disk_usage(server.data_dir),
    )


def stop_embedded(server: EmbeddedPostgres) -> bool:
    """Stop the server on `server.data_dir` whoever started it; False if none was running."""
    if server.running() is None:
        return False
    server.stop(force=True)
    return True


def reset_embedded(server: EmbeddedPostgres) -> int:
    """Stop the server and delete its data; the bytes freed."""
    stop_embedded(server)
    freed = disk_usage(server.data_dir)
    for name in OWNED:
        path = server.data_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    try:
        server.data_dir.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        log.warning("kept %s: it holds files the embedded server did not put there", server.data_dir)
    return freed


def human_size(size: int) -> str:
    """1.5 KB, 41.2 MB: sizes for people."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
