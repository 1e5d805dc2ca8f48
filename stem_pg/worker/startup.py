"""What ``stem worker run`` hands the lean worker process: its options as given, and how
the lean process turns them into an app on its database and namespace and the workers'
settings. The command itself only parses them: loading the app (the driver, the client,
the user's modules) and the start-up checks happen once, in the lean process."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stem_pg.config.settings import StemConfig
from stem_pg.core.errors import ConfigError
from stem_pg.core.routing_registry import RoutingSubscription
from stem_pg.worker.settings import WorkerSettings, default_worker_id

if TYPE_CHECKING:
    import asyncio

    from stem_pg.client.app import Stem


@dataclass(frozen=True)
class WorkerOptions:
    """The ``stem worker run`` options, as the command line gave them (None: not given)."""

    queues: tuple[str, ...] = ()
    broadcasts: tuple[str, ...] = ()
    name: str | None = None
    concurrency: int = 10
    prefetch_multiplier: int | None = None
    lease: float = 30.0
    grace: float = 30.0
    poll_interval: float = 1.0
    vacuum: bool = True
    max_tasks_per_child: int | None = None
    max_memory_per_child: int | None = None
    summary_interval: float = 60.0
    claim_unregistered: bool = False
    connections: str = "minimal"
    event_loop: str = "asyncio"
    claim_in_flush: bool = False
    url: str | None = None  # --url
    namespace: str | None = None  # --namespace
    direct_url: str | None = None  # --direct-url


def prepare(app: Stem, options: WorkerOptions) -> WorkerSettings:
    """Point ``app`` at the database and namespace the rules choose (StemConfig: ``--url``,
    else STEM_BROKER_URL, else the app's; ``--namespace``, else STEM_WORKER_NAMESPACE, ...)
    and build the workers' settings; ConfigError on a bad option or variable."""
    from stem_pg.client.loading import point_app

    config = StemConfig.from_environment(os.environ)
    point_app(
        app,
        config,
        url=options.url,
        namespace=options.namespace,
        component="worker",
        direct_url=options.direct_url,
    )
    subscription = RoutingSubscription.build(
        app.routing,
        queues=options.queues or config.worker_queues,
        broadcasts=options.broadcasts or config.worker_broadcasts,
    )
    settings = WorkerSettings(
        queues=subscription.queues,
        broadcasts=subscription.broadcasts,
        worker_id=options.name or default_worker_id(),
        concurrency=options.concurrency,
        prefetch_multiplier=options.prefetch_multiplier or config.prefetch_multiplier,
        lease_seconds=options.lease,
        shutdown_grace=options.grace,
        poll_interval=options.poll_interval,
        vacuum=options.vacuum,
        max_tasks_per_child=options.max_tasks_per_child,
        max_memory_per_child=options.max_memory_per_child,
        summary_interval=options.summary_interval,
        claim_unregistered=options.claim_unregistered,
        connections=options.connections,
        event_loop=options.event_loop,
        claim_in_flush=options.claim_in_flush,
    )
    loop_factory(settings.event_loop)
    return settings


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``--event-loop`` names (None: asyncio's own); ConfigError when the
    uvloop extra is not installed."""
    if name != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        raise ConfigError("--event-loop uvloop needs uvloop: pip install 'stem_pg[uvloop]'") from None
    return uvloop.new_event_loop
