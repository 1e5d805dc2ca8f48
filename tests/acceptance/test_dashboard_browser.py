"""The dashboard in headless Chromium (Playwright, Debian's /usr/bin/chromium), served by a
real ``stem dashboard`` process over a migrated namespace with a real worker process.

One browser and one dashboard server per module. The screenshots the tests take are the
README's (docs/dashboard-*.png; rewritten with STEM_UPDATE_SCREENSHOTS=1). Skipped, saying
why, without Playwright or Chromium.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import Stem
from stem_pg.dashboard import DashboardAuth, create_app
from tests.acceptance.dashapp import make_app
from tests.acceptance.dashserver import Server, free_port
from tests.acceptance.workerapp import Workers
from tests.helpers import REPO_ROOT, migrated_namespace, run_stem, wait_for

CHROMIUM = "/usr/bin/chromium"
DOCS = REPO_ROOT / "docs"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)", allow_module_level=True)


@contextmanager
def in_process(database_url: str, ns: str, **options: Any) -> Iterator[str]:
    """``create_app(**options)`` served by uvicorn on a thread (quicker than another process);
    yields its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        create_app(database_url, ns, **options), port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    served = uvicorn.Server(config)
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    wait_for(lambda: served.started, timeout=10, what="the in-process dashboard")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        served.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def ns(database_url: str) -> Iterator[str]:
    with migrated_namespace(database_url, prefix="dash") as name:
        yield name


@pytest.fixture(scope="module")
def stem(database_url: str, ns: str) -> Iterator[Stem]:
    application = make_app(database_url, ns)
    yield application
    application.close()


@pytest.fixture(scope="module")
def worker(database_url: str, ns: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    spawner = Workers(database_url, ns, tmp_path_factory.mktemp("workers"))
    spawner.start(
        concurrency=4, app="tests.acceptance.dashapp:app", extra=["--queue", "default", "--queue", "pausable"]
    )
    try:
        yield spawner
    finally:
        spawner.cleanup()


@pytest.fixture(scope="module")
def server(
    database_url: str, ns: str, worker: Workers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = Server(database_url, ns, tmp_path_factory.mktemp("dash") / "dashboard.log")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    opened.on("dialog", lambda dialog: dialog.accept())  # every action's confirmation: yes
    yield opened
    context.close()


def _shot(page: Any, name: str) -> None:
    """Take the screenshot (the page renders); write it over the README's copy in docs/ only
    with STEM_UPDATE_SCREENSHOTS=1, so a test run leaves the tree clean."""
    image = page.screenshot(full_page=True)
    if os.environ.get("STEM_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        (DOCS / f"dashboard-{name}.png").write_bytes(image)


def _state(db: psycopg.Connection[Any], ns: str, task_id: str) -> str | None:
    row = db.execute(f'SELECT state FROM "{ns}".task_states WHERE id = %s', (task_id,)).fetchone()
    return None if row is None else str(row[0])


def test_overview_shows_a_queue_and_its_depth(page: Any, server: Server, stem: Stem, ns: str) -> None:
    for i in range(7):
        stem.enqueue("dash.ok", queue="backlog", task_id=f"waiting-{i}")
    stem.enqueue("dash.ok", task_id="done-1")
    page.goto(f"{server.url}/n/{ns}/")
    depth = page.locator('tr[data-queue="backlog"] td.depth')
    sync_api.expect(depth).to_have_text("7")
    page.wait_for_function("document.querySelectorAll('.chart canvas').length === 3")
    sync_api.expect(page.locator(".count").first).to_have_text("1")  # the running worker
    page.goto(f"{server.url}/n/{ns}/workers")
    sync_api.expect(page.locator("table.workers .state-alive")).to_have_count(1)
    # The worker beats every 0.7 s (a third of its 2 s lease): a beat fills these in, no reload.
    sync_api.expect(page.locator("table.workers td.beat")).to_have_text(
        re.compile(r"^\d+ / \d+$"), timeout=5000
    )
    _shot(page, "workers")


def test_a_failure_shows_up_within_two_seconds_without_a_reload(
    page: Any, server: Server, stem: Stem, ns: str, db: psycopg.Connection[Any]
) -> None:
    page.goto(f"{server.url}/n/{ns}/")
    sync_api.expect(page.locator("#live-state")).to_have_class("live-state on")
    page.evaluate("window.__not_reloaded = true")
    stem.enqueue("dash.fail", task_id="fails-live")
    wait_for(lambda: _state(db, ns, "fails-live") == "failed", timeout=10, what="the job to fail")
    failed_at = time.monotonic()
    page.locator("table.failures").get_by_text("fails-live").wait_for(timeout=2000)
    assert time.monotonic() - failed_at < 2.0
    assert page.evaluate("window.__not_reloaded") is True
    _shot(page, "overview")
    page.goto(f"{server.url}/n/{ns}/jobs/fails-live")
    sync_api.expect(page.locator("pre.error").first).to_contain_text("the dashboard test asked for a failure")
    _shot(page, "job")


def test_replay_from_the_dead_letters_runs_the_job_again(
    page: Any, server: Server, stem: Stem, ns: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    flag = tmp_path / "recover"
    stem.enqueue("dash.fail", {"unless": str(flag)}, task_id="replay-me")
    wait_for(lambda: _state(db, ns, "replay-me") == "failed", timeout=10, what="the job to fail")
    page.goto(f"{server.url}/n/{ns}/dead")
    row = page.locator('tr[data-task-id="replay-me"]')
    sync_api.expect(row).to_be_visible()
    _shot(page, "dead-letters")
    flag.touch()
    row.get_by_role("button", name="Replay").click()
    sync_api.expect(page.locator(".flash")).to_contain_text("replayed replay-me")
    wait_for(lambda: _state(db, ns, "replay-me") == "succeeded", timeout=10, what="the replayed job to run")


def test_pause_from_the_queue_page_stops_claiming(
    page: Any, server: Server, stem: Stem, ns: str, db: psycopg.Connection[Any]
) -> None:
    page.goto(f"{server.url}/n/{ns}/queues/pausable")
    page.get_by_role("button", name="Pause").click()
    sync_api.expect(page.locator("p.paused")).to_contain_text("by dashboard:local")
    stem.enqueue("dash.ok", queue="pausable", task_id="held")
    time.sleep(1.5)  # several claim rounds of a worker polling every 0.2 s
    assert _state(db, ns, "held") == "queued"
    _shot(page, "queue")
    page.get_by_role("button", name="Resume").click()
    sync_api.expect(page.locator(".flash")).to_contain_text("queue pausable resumed")
    wait_for(lambda: _state(db, ns, "held") == "succeeded", timeout=10, what="the job to run once resumed")


def test_an_action_without_the_csrf_token_is_refused(
    page: Any, server: Server, ns: str, db: psycopg.Connection[Any]
) -> None:
    page.goto(f"{server.url}/n/{ns}/queues/csrf")  # the session cookie, but not the token
    answer = page.request.post(f"{server.url}/n/{ns}/actions/pause", form={"queue": "csrf"})
    assert answer.status == 403 and "CSRF" in answer.text()
    assert db.execute(f"SELECT count(*) FROM \"{ns}\".paused_queues WHERE queue = 'csrf'").fetchone() == (0,)


def test_read_only_hides_and_refuses_actions(page: Any, database_url: str, ns: str, server: Server) -> None:
    with in_process(database_url, ns, read_only=True, auth=DashboardAuth()) as base:
        page.goto(f"{base}/n/{ns}/queues/default")
        sync_api.expect(page.locator(".who")).to_contain_text("read-only")
        assert page.locator("button[data-action]").count() == 0
        page.goto(f"{base}/n/{ns}/dead")
        assert page.locator("button[data-action]").count() == 0
        token = next(c["value"] for c in page.context.cookies() if c["name"] == "stem_csrf")
        answer = page.request.post(f"{base}/n/{ns}/actions/pause", form={"queue": "default", "csrf": token})
        assert answer.status == 403 and "read-only" in answer.text()
        page.goto("about:blank")  # closes the page's event stream before the server stops


def test_with_auth_configured_every_page_answers_401_without_credentials(
    browser: Any, database_url: str, ns: str, server: Server
) -> None:
    auth = DashboardAuth.from_environment({"STEM_DASHBOARD_TOKEN": "s3cret"})
    with in_process(database_url, ns, auth=auth) as base:
        anonymous = browser.new_context()
        pages = ["jobs", "dead", "workers", "schedules", "workflows", "canvases", "broadcasts", "live"]
        for path in ["/", "/static/dashboard.css", f"/n/{ns}/", *(f"/n/{ns}/{p}" for p in pages)]:
            assert anonymous.request.get(base + path).status == 401, path
        anonymous.close()
        signed_in = browser.new_context(http_credentials={"username": "ops", "password": "s3cret"})
        page = signed_in.new_page()
        assert page.goto(f"{base}/n/{ns}/jobs").status == 200
        assert "s3cret" not in page.content()
        page.goto("about:blank")
        signed_in.close()


def test_binding_elsewhere_without_authentication_is_refused(database_url: str, ns: str) -> None:
    port = str(free_port())
    refused = run_stem(database_url, "dashboard", "--namespace", ns, "--host", "0.0.0.0", "--port", port)
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("error: --host 0.0.0.0: refusing to serve the dashboard")
    assert "Traceback" not in refused.stderr
