"""The connection budget the README and ``stem doctor`` quote matches what the processes open."""

from __future__ import annotations

from stem_pg.core.budget import BEAT_PROCESS, WORKER_PROCESS, fleet_connections
from stem_pg.worker.connections import WorkerConnections


async def _nothing(_conn: object) -> None:
    return None


def test_a_worker_process_holds_the_connections_the_budget_counts() -> None:
    conns = WorkerConnections(
        "postgresql://nowhere/none", plan_claims=_nothing, listen_connected=_nothing, on_lost=lambda: None
    )
    assert len(conns.all) == WORKER_PROCESS
    assert len({managed.role for managed in conns.all}) == WORKER_PROCESS


def test_the_fleet_formula() -> None:
    assert fleet_connections(10) == 10 * WORKER_PROCESS
    assert (
        fleet_connections(4, beats=2, app_pools=3, pool_size=5) == 4 * WORKER_PROCESS + 2 * BEAT_PROCESS + 15
    )
