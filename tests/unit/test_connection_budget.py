"""The connection budget the README and ``stem doctor`` quote matches what the processes open."""

from __future__ import annotations

import pytest

from stem_pg.core.budget import WORKER_PROCESS, WORKER_PROCESS_PER_LOOP
from stem_pg.core.errors import ConfigError
from stem_pg.worker.connections import WorkerConnections
from stem_pg.worker.settings import WorkerSettings


async def _nothing(_conn: object) -> None:
    return None


def test_a_worker_process_holds_the_connections_the_budget_counts() -> None:
    default = WorkerConnections(
        "postgresql://nowhere/none", plan_claims=_nothing, listen_connected=_nothing, on_lost=lambda: None
    )
    assert len(default.all) == WORKER_PROCESS == 2
    per_loop = WorkerConnections(
        "postgresql://nowhere/none",
        plan_claims=_nothing,
        listen_connected=_nothing,
        on_lost=lambda: None,
        mode="per-loop",
    )
    assert len(per_loop.all) == WORKER_PROCESS_PER_LOOP
    assert len({managed.role for managed in per_loop.all}) == WORKER_PROCESS_PER_LOOP


def test_an_unknown_connection_mode_is_refused_naming_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--connections must be minimal or per-loop, got 'few'$"):
        WorkerSettings(queues=("default",), connections="few")
    assert WorkerSettings(queues=("default",)).connections == "minimal"


def test_minimal_mode_shares_one_connection_besides_listen() -> None:
    conns = WorkerConnections(
        "postgresql://nowhere/none",
        plan_claims=_nothing,
        listen_connected=_nothing,
        on_lost=lambda: None,
        mode="minimal",
    )
    assert len(conns.all) == 2
    assert conns.claim is conns.flush is conns.house is conns.maintenance is conns.control
    assert conns.claim.shared and conns.listen is not conns.claim
