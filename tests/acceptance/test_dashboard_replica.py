"""``stem dashboard`` on a hot standby (a streaming read replica of a private cluster): every
page answers from the replicated data, the live feed polls (a standby refuses LISTEN) with
one log line, nothing tries to write, and an action on a dashboard not started
``--read-only`` is refused with one clear message; once the standby is promoted, the live
feed LISTENs there."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from stem_pg.client.schedules import Schedules
from stem_pg.core.namespaces import Channels
from stem_pg.core.schedule_specs import IntervalSpec
from stem_pg.core.schedules import ScheduleEntry
from stem_pg.dashboard import live
from tests.acceptance.dashapp import make_app
from tests.acceptance.dashserver import Server
from tests.cluster import PrivateCluster, caught_up, migrated, running_cluster, standby_of
from tests.helpers import running_worker, wait_for

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

pytestmark = pytest.mark.slow  # two private servers and two dashboard processes: about 30 s

NS = "replica"
PAGES = [
    "/",
    "/jobs",
    "/jobs/done-0",
    "/jobs/failed-1",
    "/dead",
    "/workers",
    "/schedules",
    "/workflows",
    "/canvases",
    "/broadcasts",
    "/queues/default",
]


@pytest.fixture(scope="module")
def primary() -> Iterator[PrivateCluster]:
    """A private primary with finished, failed and waiting jobs, a worker that ran them,
    and a schedule."""
    with running_cluster() as cluster:
        migrated(cluster, NS)
        stem = make_app(cluster.url, NS)
        try:
            with running_worker(stem):
                for i in range(3):
                    stem.enqueue("dash.ok", task_id=f"done-{i}")
                stem.enqueue("dash.fail", task_id="failed-1")
                wait_for(lambda: _finished(cluster) == 4, timeout=20, what="the four jobs to finish")
            stem.enqueue("dash.ok", queue="backlog", task_id="waiting-1")
            Schedules(cluster.url, NS).save(
                ScheduleEntry(name="nightly", task="dash.ok", spec=IntervalSpec(60))
            )
        finally:
            stem.close()
        yield cluster


@pytest.fixture(scope="module")
def standby(primary: PrivateCluster) -> Iterator[PrivateCluster]:
    with standby_of(primary) as replica:
        caught_up(primary, replica)
        yield replica


def _finished(cluster: PrivateCluster) -> int:
    with cluster.connect() as db:
        row = db.execute(
            f"SELECT count(*) FROM \"{NS}\".results WHERE state IN ('succeeded', 'failed')"
        ).fetchone()
    return int(str(row[0])) if row else 0


def _server_errors(cluster: PrivateCluster, offset: int) -> list[str]:
    """The ERROR lines the server logged after ``offset``: a write or a LISTEN tried there."""
    with (cluster.data_dir / "server.log").open("rb") as log:
        log.seek(offset)
        return [line for line in log.read().decode(errors="replace").splitlines() if "ERROR:" in line]


def _log_size(cluster: PrivateCluster) -> int:
    return (cluster.data_dir / "server.log").stat().st_size


def _first_live_event(http: Any, timeout: float = 15.0) -> str:
    """The first event the live stream sends (a standby never notifies: a poll's)."""
    deadline = time.monotonic() + timeout
    with http.stream("GET", "/live", timeout=timeout) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                return str(line.removeprefix("event: "))
            assert time.monotonic() < deadline, "no live event"
    raise AssertionError("the live stream ended")


def test_a_read_only_dashboard_on_a_standby_shows_the_replicated_data_and_writes_nothing(
    primary: PrivateCluster, standby: PrivateCluster, tmp_path: Path
) -> None:
    offset = _log_size(standby)
    server = Server(standby.url, NS, tmp_path / "dashboard.log", "--read-only")
    try:
        with httpx.Client(base_url=f"{server.url}/n/{NS}", timeout=20) as http:
            for page in PAGES:
                answer = http.get(page)
                assert answer.status_code == 200, (page, answer.text[:500])
            overview = http.get("/").text
            assert re.search(r'data-queue="backlog".*?class="num depth">1<', overview, re.S), overview
            assert "done-2" in http.get("/jobs").text
            assert "dash.ok" in http.get("/jobs/done-0").text
            assert "failed-1" in http.get("/dead").text
            assert "gone" in http.get("/workers").text  # the worker that ran them, stopped since
            assert "nightly" in http.get("/schedules").text
            assert _first_live_event(http) == "refresh"  # by polling
            # What the primary does next reaches the page through replication.
            late = make_app(primary.url, NS)
            try:
                late.enqueue("dash.ok", queue="late", task_id="late-1")
            finally:
                late.close()
            caught_up(primary, standby)
            assert 'data-queue="late"' in http.get("/").text
            time.sleep(3)  # more than the live feed's retry delay: it must not retry and log again
    finally:
        server.stop()
    log = server.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log, log
    assert log.count("standby") == 1, log
    assert "polling" in log, log
    assert _server_errors(standby, offset) == []


def test_an_action_on_a_standby_is_refused_with_one_clear_message(
    standby: PrivateCluster, tmp_path: Path
) -> None:
    offset = _log_size(standby)
    server = Server(standby.url, NS, tmp_path / "dashboard.log")
    try:
        with httpx.Client(base_url=f"{server.url}/n/{NS}", timeout=20, follow_redirects=False) as http:
            page = http.get("/queues/default").text
            token = re.search(r'name="csrf" value="([^"]+)"', page)
            assert token, page[:2000]
            for name, fields in [("pause", {"queue": "default"}), ("replay", {"task_id": "failed-1"})]:
                answer = http.post(f"/actions/{name}", data={"csrf": token.group(1), **fields})
                assert answer.status_code == 303, (name, answer.status_code, answer.text[:2000])
                message = parse_qs(urlsplit(answer.headers["location"]).query)["msg"][0]
                assert message.startswith(f"{name} failed: the database is read-only (a standby"), message
                assert "primary" in message, message
                assert "\n" not in message
    finally:
        server.stop()
    log = server.log.read_text()
    assert "Traceback" not in log, log
    assert len(_server_errors(standby, offset)) == 2  # each action's refused write, nothing else


async def _until(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_feed_on_a_standby_listens_once_the_standby_is_promoted(
    primary: PrivateCluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(live, "STANDBY_RECHECK", 0.2)
    caplog.set_level(logging.WARNING, logger="stem_pg.dashboard.live")
    with standby_of(primary) as replica:  # a standby of its own: this test promotes it
        feed = live.Feed(replica.url, NS)
        feed.start()
        try:
            await _until(lambda: feed.standby, "the feed to find a standby")
            await asyncio.sleep(1)  # several rechecks: still one line
            with replica.connect() as db:
                db.execute("SELECT pg_promote()")
            await _until(lambda: feed.listening, "the feed to LISTEN on the promoted server")
            heard = feed.version
            with replica.connect() as db:
                db.execute("SELECT pg_notify(%s, '')", (Channels(NS).jobs,))
            await _until(lambda: feed.version > heard, "the notification")
        finally:
            await feed.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert sum("standby" in line for line in lines) == 1, lines
    assert any("accepts LISTEN again" in line for line in lines), lines
    assert not any("failed" in line for line in lines), lines
