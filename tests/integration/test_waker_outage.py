"""The client's waker through a database outage (a private cluster): one warning when it
starts, retries paced by the shared backoff, the pending wake-up sent once the server is back."""

from __future__ import annotations

import logging
import time

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.waker import Waker
from stem_pg.db.queries import queries_for
from tests.cluster import PrivateCluster, migrated, private_cluster
from tests.helpers import wait_for

__all__ = ["private_cluster"]  # the fixture, imported for the test below


def test_an_outage_costs_the_waker_one_warning_and_the_wake_up_comes_after(
    private_cluster: PrivateCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stem_pg.client.waker")
    queries = queries_for(migrated(private_cluster, "waker"))
    waker = Waker(private_cluster.url, queries)
    try:
        waker.request(["default"])  # connected and idle
        time.sleep(0.3)
        private_cluster.crash()
        for _ in range(30):  # 3 s of enqueues asking for wake-ups while the server is down
            waker.request(["default"])
            time.sleep(0.1)
        private_cluster.start()
        with psycopg.connect(private_cluster.url, autocommit=True) as listener:
            listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(queries.channels.jobs)))
            heard = [n.payload for n in listener.notifies(timeout=10, stop_after=1)]
        wait_for(lambda: "waker reconnected after" in caplog.text, 10, "the waker's 'reconnected' line")
    finally:
        waker.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert heard == ["default"], "the wake-up pending through the outage is sent once the server is back"
    assert len(warnings) == 1 and "could not wake workers" in warnings[0], warnings
