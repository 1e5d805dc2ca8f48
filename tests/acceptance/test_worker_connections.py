"""The connections each worker process holds, counted in ``pg_stat_activity`` (by
application_name, matched to the process through its sockets' ports): by default (``--connections
minimal``) two (LISTEN, and one its loops share), with ``per-loop`` six; the supervisor none.
Each process registers that count (``stem doctor`` adds them up). Jobs run to their end either way."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from stem_pg.client.app import EnqueueRequest, Stem
from stem_pg.core.budget import WORKER_PROCESS, WORKER_PROCESS_PER_LOOP
from tests.acceptance.workerapp import Workers, local_ports, query, registered_pids, scalar
from tests.helpers import wait_for


def connections_of(db: psycopg.Connection[Any], pid: int) -> list[str]:
    """application_name of each stem_pg connection that process ``pid`` holds."""
    rows = db.execute(
        "SELECT application_name FROM pg_stat_activity"
        " WHERE application_name LIKE 'stem_pg:%%' AND client_port = ANY(%s) ORDER BY 1",
        (sorted(local_ports(pid)),),
    ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (None, ["stem_pg:worker", "stem_pg:worker-listen"]),
        ("minimal", ["stem_pg:worker", "stem_pg:worker-listen"]),
        (
            "per-loop",
            [
                "stem_pg:worker-claim",
                "stem_pg:worker-control",
                "stem_pg:worker-flush",
                "stem_pg:worker-leases",
                "stem_pg:worker-listen",
                "stem_pg:worker-maintenance",
            ],
        ),
    ],
)
def test_connections_per_worker_process(
    mode: str | None,
    expected: list[str],
    stem: Stem,
    workers: Workers,
    db: psycopg.Connection[Any],
    namespace: str,
) -> None:
    supervisor = workers.start(
        processes=2, concurrency=4, extra=[] if mode is None else ["--connections", mode]
    )
    wait_for(lambda: len(registered_pids(db, namespace)) == 2, 30, "two worker processes")
    children = registered_pids(db, namespace)
    ids = [r.id for r in stem.enqueue_many(EnqueueRequest("acc.step", {"n": n}) for n in range(40))]
    count = "SELECT count(*) FROM {ns}.results WHERE id = ANY(%s) AND state = 'succeeded'"
    wait_for(lambda: scalar(db, namespace, count, [ids]) == 40, 30, f"the jobs to run\n{supervisor.log()}")
    ran_in = {r[0] for r in query(db, namespace, "SELECT DISTINCT pid FROM {ns}.ledger")}
    assert ran_in <= children

    # Every loop has opened its connection by now (the flush's with the first outcome).
    def all_open() -> bool:
        return all(connections_of(db, pid) == expected for pid in children)

    wait_for(all_open, 10, f"each process's connections to be {expected}")
    assert connections_of(db, supervisor.pid) == []
    assert len(expected) == (WORKER_PROCESS_PER_LOOP if mode == "per-loop" else WORKER_PROCESS)
    if mode is None:
        assert len(expected) == WORKER_PROCESS <= 2  # the default budget (issue: at most two)
    registered = query(db, namespace, "SELECT connections FROM {ns}.workers WHERE stopped_at IS NULL")
    assert registered == [(len(expected),)] * 2
