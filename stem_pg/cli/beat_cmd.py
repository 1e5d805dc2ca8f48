"""``stem beat``: run the scheduler (any number of replicas; one leads, the others stand by)."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from stem_pg.cli import common, log_options
from stem_pg.cli.loading import load_app


def beat_command(
    app_spec: Annotated[
        str, typer.Option("--app", "-A", help="Your application object, as 'package.module:app'.")
    ],
    lease: Annotated[
        float,
        typer.Option(
            "--lease",
            min=1.0,
            help="Seconds the leader's lease lasts without renewal: a killed or frozen leader"
            " is replaced after about this long.",
        ),
    ] = 5.0,
    max_sleep: Annotated[
        float, typer.Option("--max-sleep", min=0.1, help="Longest pause between checks for due entries.")
    ] = 5.0,
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
    direct_url: common.DirectUrlOption = None,
    loglevel: log_options.LogLevelOption = None,
    log_format: log_options.LogFormatOption = None,
    metrics_port: common.MetricsPortOption = None,
) -> None:
    """Run beat until SIGTERM/SIGINT: fire due schedule entries as jobs.

    Beat refuses to start, with one line, on a database it cannot reach or a namespace not
    migrated to this version; once running, it rides out database outages.
    """
    from stem_pg.beat.scheduler import Beat, BeatSettings, check_single_database

    if metrics_port is not None:
        from stem_pg.metrics.exposition import require_client

        require_client()
    log_options.configure(loglevel, log_format)
    stem = common.apply_to_app(load_app(app_spec), url=url, namespace_flag=namespace, direct_url=direct_url)
    check_single_database(stem.config)
    common.require_migrated(stem)
    beat = Beat(stem, BeatSettings(lease_seconds=lease, max_sleep=max_sleep))
    if metrics_port is not None:
        from stem_pg.metrics.beat import BeatMetrics
        from stem_pg.metrics.exposition import serve

        serve(metrics_port, BeatMetrics(stem.signals, beat.leading).registry)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, beat.request_stop)
        await beat.run()

    asyncio.run(main())
