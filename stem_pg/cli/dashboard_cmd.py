"""``stem dashboard``: serve the web dashboard (uvicorn), on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from stem_pg.cli import common
from stem_pg.core.dsn import validate_url


def dashboard_command(
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. Anything but this machine needs authentication"
            " (STEM_DASHBOARD_TOKEN, STEM_DASHBOARD_USERS or STEM_DASHBOARD_TRUSTED_HEADER).",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8080,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Show no action and refuse every one (pause, replay...).")
    ] = False,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            help="Namespace to open on. Defaults to STEM_DASHBOARD_NAMESPACE, then STEM_NAMESPACE, then"
            " 'stem'; the page switches to any other the role may read.",
            callback=common._check_namespace,
            show_default=False,
        ),
    ] = None,
    url: common.UrlOption = None,
    direct_url: common.DirectUrlOption = None,
) -> None:
    """Serve the web dashboard: queues, jobs, dead letters, workers, schedules, workflows, live."""
    try:
        import uvicorn

        from stem_pg.dashboard import DashboardAuth, create_app
        from stem_pg.dashboard.settings import check_bind
    except ImportError as exc:
        typer.echo(
            f"error: the dashboard needs its extra: pip install 'stem_pg[dashboard]' ({exc.name} is missing)",
            err=True,
        )
        raise typer.Exit(1) from None
    auth = DashboardAuth.from_environment(os.environ)
    check_bind(host, auth)
    chosen = common.namespace(namespace, component="dashboard")
    app = create_app(
        common.reachable(common.database_url(url)),
        chosen,
        auth=auth,
        read_only=read_only,
        direct_url=validate_url(direct_url, source="--direct-url") if direct_url else None,
    )
    typer.echo(
        f"stem dashboard of namespace {chosen} on http://{host}:{port}/"
        + (" (read-only)" if read_only else "")
    )
    uvicorn.run(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=1, server_header=False
    )
