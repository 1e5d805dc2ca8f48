"""``stem metrics serve``: the namespace exporter (Prometheus gauges read from the database)."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from stem_pg.cli import common

app = typer.Typer(help="Prometheus metrics of a namespace.", no_args_is_help=True)

DEFAULT_PORT = 9469


@app.command("serve")
def serve_command(
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Serve http://0.0.0.0:PORT/metrics.")
    ] = DEFAULT_PORT,
    stale_after: Annotated[
        float,
        typer.Option(
            "--stale-after", min=1, help="Seconds without a heartbeat before a worker counts as stale."
        ),
    ] = 60.0,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.1, help="Seconds each query of a scrape may take."),
    ] = 5.0,
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
) -> None:
    """Serve the namespace's queue depths, oldest ready ages, dead letters, workers, schedule
    lag, workflow runs and rate and concurrency limits to Prometheus, read from the database
    at each scrape, until SIGTERM/SIGINT. Needs stem_pg[metrics]."""
    from stem_pg.metrics.exposition import require_client

    require_client("stem metrics serve")
    from prometheus_client import CollectorRegistry

    from stem_pg.metrics.exposition import serve
    from stem_pg.metrics.namespace import NamespaceCollector
    from stem_pg.schema.health import check_migrated

    name = common.namespace(namespace)
    database = common.database_url(url)
    check_migrated(database, name)
    registry = CollectorRegistry()
    registry.register(NamespaceCollector(database, name, stale_after=stale_after, timeout=timeout))
    serve(port, registry, flag="--port")
    typer.echo(f"serving the metrics of namespace {name} on http://0.0.0.0:{port}/metrics")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
