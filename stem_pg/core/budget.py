"""The connection budget: how many connections each kind of stem_pg process holds at most, and
what a fleet of them asks of the server's ``max_connections`` (README, "Connection budget")."""

from __future__ import annotations

#: A worker process by default (``--connections minimal``): LISTEN, and one connection that the
#: claim, flush, leases, maintenance and control loops share (stem_pg.worker.connections).
#: A ``--processes N`` supervisor holds none.
WORKER_PROCESS = 2
#: A worker process with ``--connections per-loop``: claim, flush, leases (registration and
#: heartbeat), maintenance, control and listen, one each.
WORKER_PROCESS_PER_LOOP = 6
#: A worker process's connections, by ``--connections`` mode (each worker registers its own).
WORKER_CONNECTIONS = {"minimal": WORKER_PROCESS, "per-loop": WORKER_PROCESS_PER_LOOP}
#: ``stem beat``: its lease, its tick and its listen connection (stem_pg.beat.scheduler).
BEAT_PROCESS = 3


def fleet_connections(
    worker_processes: int,
    *,
    per_worker: int = WORKER_PROCESS,
    beats: int = 0,
    app_pools: int = 0,
    pool_size: int = 10,
) -> int:
    """The most connections a fleet opens: ``worker_processes`` worker processes of
    ``per_worker`` connections, ``beats`` beat processes, and ``app_pools`` application pools
    (a web process, or a worker process whose handlers enqueue) of ``pool_size`` each."""
    return worker_processes * per_worker + beats * BEAT_PROCESS + app_pools * pool_size
