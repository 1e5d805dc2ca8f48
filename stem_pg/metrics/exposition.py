"""Serving ``/metrics``: one process's registry, or, under ``--processes N``, the sum over every
forked worker process through prometheus_client's multiprocess mode (a private directory of
metric files that the supervisor makes before the first fork and removes at exit)."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import TYPE_CHECKING

from stem_pg.core.errors import StemError

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.registry import Collector, CollectorRegistry

INSTALL_HINT = "pip install 'stem_pg[metrics]'"
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class MetricsUnavailable(StemError):
    """Metrics were asked for but cannot be served: prometheus_client is missing, or the port
    is taken."""


def require_client(flag: str = "--metrics-port") -> None:
    """Raise MetricsUnavailable, naming ``flag`` and the extra to install, unless
    prometheus_client can be imported."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise MetricsUnavailable(
            f"{flag} needs prometheus_client, which is not installed: {INSTALL_HINT}"
        ) from None


def serve(
    port: int, registry: Collector, *, flag: str = "--metrics-port", addr: str = "0.0.0.0"
) -> WSGIServer:
    """Serve ``registry`` on ``http://addr:port/metrics`` from a daemon thread of this process."""
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, addr=addr, registry=registry)
        return server
    except OSError as exc:
        raise MetricsUnavailable(f"{flag} {port}: cannot listen on it: {exc.strerror or exc}") from None


class SharedMetrics:
    """Multiprocess mode for forked worker processes: each child writes its metrics to files
    in a private directory, and ``registry()`` (served by the supervisor) sums them.

    Make it before the first fork: it points prometheus_client at the directory, also when
    the application already imported it. Counters and histograms of an exited process stay
    in the sum (a recycled process does not take back what it counted); its live gauges go
    with ``process_exited``. ``close()`` removes the directory.
    """

    def __init__(self) -> None:
        from prometheus_client import values

        self.path = tempfile.mkdtemp(prefix="stem-metrics-")
        #: The supervisor's server, once serving: a forked process closes its copy of the socket.
        self.server: WSGIServer | None = None
        self._previous = os.environ.get(MULTIPROCESS_VARIABLE)
        os.environ[MULTIPROCESS_VARIABLE] = self.path
        # Chosen when prometheus_client is imported: an app that imported it already got the
        # single-process kind, whose values the children could not share.
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]

    def registry(self) -> CollectorRegistry:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.path)  # type: ignore[no-untyped-call]
        return registry

    def forked(self) -> None:
        """In a forked process: let go of the inherited listening socket, so that the port is
        free once the supervisor is gone, whatever happens to this process."""
        if self.server is not None:
            self.server.socket.close()

    def process_exited(self, pid: int) -> None:
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(pid, self.path)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._previous is None:
            os.environ.pop(MULTIPROCESS_VARIABLE, None)
        else:
            os.environ[MULTIPROCESS_VARIABLE] = self._previous
