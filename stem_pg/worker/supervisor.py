"""Running workers from the CLI: signals, ``--processes`` forked children (which stop if their
supervisor dies: stem_pg.worker.lifeline), the replacement of a process that retired
(stem_pg.worker.recycle), ``--metrics-port`` (served by the supervisor for all its children:
stem_pg.metrics.exposition), and an exit that no task ignoring its cancel can hold up."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import time
from typing import TYPE_CHECKING

from stem_pg.worker.banner import log_banner
from stem_pg.worker.lifeline import Lifeline
from stem_pg.worker.recycle import EXIT_RETIRED
from stem_pg.worker.settings import WorkerSettings, default_worker_id
from stem_pg.worker.shutdown import cancel_within
from stem_pg.worker.startup import loop_factory
from stem_pg.worker.worker import Worker

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from stem_pg.client.app import Stem
    from stem_pg.metrics.exposition import SharedMetrics
    from stem_pg.metrics.worker import WorkerMetrics

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0
#: Set in the environment of the fresh process that replaces a retired worker: the database
#: may be away at that moment, and a worker that ran once keeps retrying rather than exit.
REPLACEMENT_VARIABLE = "_STEM_WORKER_REPLACEMENT"
#: More environment for that fresh process only (the lean process's plan, which holds the
#: database URL: kept out of the environment that task code and its subprocesses see).
REPLACEMENT_ENVIRONMENT: dict[str, str] = {}
#: How long the tasks still there once the worker stopped get to end after a cancel.
STRAGGLERS_WAIT = 2.0


def run_worker(
    app: Stem,
    settings: WorkerSettings,
    signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
    metrics: WorkerMetrics | None = None,
    lifeline: Lifeline | None = None,
) -> Worker:
    """Run one worker in this process until one of ``signals`` (or a shutdown command), or
    until the supervisor that forked it dies (``lifeline``)."""
    worker = Worker(app, settings, metrics=metrics)
    # The application and its libraries are loaded for good: move them out of the
    # collector's reach, so a full collection no longer walks them (a 50+ ms pause).
    gc.collect()
    gc.freeze()

    def orphaned() -> None:
        # One graceful stop, whichever of the death signal and the pipe comes first (a
        # second request_stop would force it).
        if not worker.state.stopping:
            log.warning("worker %s: its supervisor is gone; stopping", worker.id)
            worker.request_stop()

    def on_signal() -> None:
        if lifeline is not None and lifeline.parent_gone():
            orphaned()  # the parent-death signal (or a SIGTERM as it died)
        else:
            worker.request_stop()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in signals:
            loop.add_signal_handler(signum, on_signal)
        if lifeline is not None:
            lifeline.watch(loop, orphaned)
        await worker.run()
        # asyncio.run would cancel what is left (a handler's task, a stuck loop) and wait for
        # it without end: a task that ignores its cancel must not keep the process.
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if await cancel_within(others, STRAGGLERS_WAIT, f"worker {worker.id}"):
            _exit_now(worker.exit_code)

    with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
        runner.run(main())
    return worker


def _exit_now(code: int) -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _leave(worker: Worker) -> None:
    """End the process as the worker's stop asks: threads of abandoned sync handlers
    would keep it alive, so then it exits without waiting for them. A worker that
    retired is replaced by a fresh run of the same command in this process (same pid,
    so a process manager or a signal still finds it): the exec ends its threads."""
    if worker.exit_code == EXIT_RETIRED:
        log.info("worker %s: starting a fresh process in its place (same pid)", worker.id)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.environ[REPLACEMENT_VARIABLE] = "1"  # no start-up check: it keeps retrying instead
            os.environ.update(REPLACEMENT_ENVIRONMENT)
            os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
        except OSError as exc:  # then a process manager has to start it again
            log.error("worker %s: could not start a fresh process: %s", worker.id, exc)
            os._exit(EXIT_RETIRED)
    if worker.abandoned_threads:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(worker.exit_code)
    if worker.exit_code:
        sys.exit(worker.exit_code)


def _child(app: Stem, settings: WorkerSettings, shared: SharedMetrics | None, lifeline: Lifeline) -> None:
    # Ctrl-C reaches the whole process group; the parent forwards it as SIGTERM once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Not the supervisor's forwarding handler: until the worker's own is set (before it holds
    # anything), a SIGTERM just ends the process.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not lifeline.attach():
        log.warning("worker %s: its supervisor died as it started; not starting", settings.worker_id)
        os._exit(0)
    metrics = None
    if shared is not None:
        shared.forked()
        metrics = worker_metrics(app, settings)  # written to this process's files
    worker = run_worker(app, settings, signals=(signal.SIGTERM,), metrics=metrics, lifeline=lifeline)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(worker.exit_code)


def worker_metrics(app: Stem, settings: WorkerSettings) -> WorkerMetrics:
    from stem_pg.metrics.worker import WorkerMetrics

    return WorkerMetrics(settings.queues, is_task=app.registry.__contains__)


def supervise(app: Stem, settings: WorkerSettings, processes: int, metrics_port: int | None = None) -> None:
    """Fork ``processes`` workers, forward signals to them, restart any that crash; serve
    their summed metrics on ``metrics_port``, if given.

    A child that exits 0 stopped on purpose (a shutdown command) and is not
    restarted; one that retired (``EXIT_RETIRED``: a task overran its hard time limit,
    ``--max-tasks-per-child``, ``--max-memory-per-child``) is replaced at once; the
    supervisor ends when no child is left. With one process there is no supervisor:
    a retired worker re-executes itself (``_leave``).
    """
    log_banner(app, settings, processes)
    if processes <= 1:
        metrics = None
        if metrics_port is not None:
            from stem_pg.metrics.exposition import serve

            metrics = worker_metrics(app, settings)
            serve(metrics_port, metrics.registry)
        _leave(run_worker(app, settings, metrics=metrics))
        return
    shared: SharedMetrics | None = None
    if metrics_port is not None:
        from stem_pg.metrics.exposition import SharedMetrics, serve

        shared = SharedMetrics()
        try:
            shared.server = serve(metrics_port, shared.registry())
        except BaseException:
            shared.close()
            raise
    try:
        _fork_and_watch(app, settings, processes, shared)
    finally:
        if shared is not None:
            shared.close()


def _fork_and_watch(
    app: Stem, settings: WorkerSettings, processes: int, shared: SharedMetrics | None
) -> None:
    lifeline = Lifeline()  # the children stop if this process dies
    try:
        _watch(app, settings, processes, shared, lifeline)
    finally:
        lifeline.close()


def _watch(
    app: Stem, settings: WorkerSettings, processes: int, shared: SharedMetrics | None, lifeline: Lifeline
) -> None:
    import multiprocessing  # only a supervisor of --processes forks (0.6 MB a single worker saves)

    context = multiprocessing.get_context("fork")
    children: dict[int, BaseProcess] = {}
    stopping = {"count": 0}

    def spawn(slot: int) -> None:  # from the main thread: the death signal follows the forking thread
        child_settings = _replace_id(settings, f"{settings.worker_id}-{slot}")
        proc = context.Process(
            target=_child, args=(app, child_settings, shared, lifeline), name=f"stem-worker-{slot}"
        )
        proc.start()
        children[slot] = proc

    def forward(signum: int, _frame: object) -> None:
        stopping["count"] += 1
        for proc in children.values():
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for slot in range(processes):
        spawn(slot)
    while children:
        for slot, proc in list(children.items()):
            if proc.is_alive():
                continue
            proc.join()
            del children[slot]
            if shared is not None and proc.pid is not None:
                shared.process_exited(proc.pid)
            if stopping["count"]:
                continue
            if proc.exitcode == EXIT_RETIRED:
                log.info("worker process %s retired; replacing it", proc.name)
                spawn(slot)
            elif proc.exitcode != 0:
                log.error("worker process %s exited with %s; restarting it", proc.name, proc.exitcode)
                time.sleep(RESTART_DELAY)
                spawn(slot)
        time.sleep(0.2)


def _replace_id(settings: WorkerSettings, worker_id: str) -> WorkerSettings:
    from dataclasses import replace

    return replace(settings, worker_id=worker_id or default_worker_id())
