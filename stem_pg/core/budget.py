"""The connection budget: how many connections each kind of stem_pg process holds at most
(README, "Connection budget": a fleet needs worker processes x W + beats x 3 + application
pools x their size). Each worker process registers its own count, which ``stem doctor``
adds up; tests hold these numbers to what the processes open."""

from __future__ import annotations

#: A worker process by default (``--connections minimal``): LISTEN, and one connection that the
#: claim, flush, leases, maintenance and control loops share (stem_pg.worker.connections).
#: A ``--processes N`` supervisor holds none.
WORKER_PROCESS = 2
#: A worker process with ``--connections per-loop``: claim, flush, leases (registration and
#: heartbeat), maintenance, control and listen, one each.
WORKER_PROCESS_PER_LOOP = 6
