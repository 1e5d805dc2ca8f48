"""The dashboard over HTTP (Starlette's test client) on a real migrated namespace: every
page renders, pages follow by keyset, and the security rules hold (auth, CSRF, read-only,
headers, no secret on a page, the bind rule)."""

from __future__ import annotations

import base64
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from psycopg import sql

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from stem_pg import WorkflowContext, chain
from stem_pg.client.app import Stem
from stem_pg.client.schedules import Schedules
from stem_pg.core.errors import ConfigError
from stem_pg.core.schedule_specs import IntervalSpec
from stem_pg.core.schedules import ScheduleEntry
from stem_pg.dashboard import DashboardAuth, create_app
from stem_pg.dashboard.settings import check_bind
from tests.helpers import url_as

PAGES = [
    "/",
    "/jobs",
    "/dead",
    "/workers",
    "/schedules",
    "/workflows",
    "/canvases",
    "/broadcasts",
    "/queues/default",
]


def _client(url: str, ns: str, **options: Any) -> Iterator[TestClient]:
    options.setdefault("auth", DashboardAuth())
    with TestClient(create_app(url, ns, **options), follow_redirects=False) as client:
        yield client


@pytest.fixture
def client(database_url: str, namespace: str) -> Iterator[TestClient]:
    yield from _client(database_url, namespace)


def _csrf(client: TestClient, path: str) -> str:
    page = client.get(path)
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text[:2000]
    return found.group(1)


def test_every_page_renders_with_the_namespace_data(
    client: TestClient, app: Stem, namespace: str, db: psycopg.Connection[Any]
) -> None:
    app.enqueue("reports.build", {"n": 1}, task_id="job-one", queue="default", priority=5)
    message = db.execute(
        f'INSERT INTO "{namespace}".broadcast_messages (task_id, channel, task)'
        " VALUES ('b-1', 'news', 'news.flash') RETURNING id"
    ).fetchone()
    assert message is not None
    db.execute(
        f'INSERT INTO "{namespace}".broadcast_fanout (message_id, subscriber, state)'
        " VALUES (%s, 'w-1', 'succeeded'), (%s, 'w-2', 'failed')",
        (message[0], message[0]),
    )
    for page in PAGES:
        answer = client.get(f"/n/{namespace}{page}")
        assert answer.status_code == 200, (page, answer.text[:500])
    overview = client.get(f"/n/{namespace}/").text
    assert 'data-queue="default"' in overview
    assert "job-one" in client.get(f"/n/{namespace}/jobs").text
    detail = client.get(f"/n/{namespace}/jobs/job-one").text
    assert "reports.build" in detail and "&#34;n&#34;: 1" in detail
    assert client.get(f"/n/{namespace}/jobs/nope").status_code == 404
    assert f'<option value="{namespace}" selected>' in overview  # the namespace switcher
    buckets = client.get(f"/n/{namespace}/queues/default").text
    assert re.search(r'<td class="num">5</td><td class="num">1</td>', buckets)
    assert "news.flash" in client.get(f"/n/{namespace}/broadcasts").text
    deliveries = client.get(f"/n/{namespace}/broadcasts/{message[0]}").text
    assert "w-1" in deliveries and "state-failed" in deliveries
    assert client.get("/n/not-a-namespace-here/").status_code == 404


def test_jobs_pages_follow_by_keyset_without_overlap(
    client: TestClient, app: Stem, namespace: str, db: psycopg.Connection[Any]
) -> None:
    for i in range(120):
        app.enqueue("bulk.task", {"i": i}, task_id=f"bulk-{i:03d}")
    # Every third one running: the page reads running jobs apart from waiting ones (migration
    # 0018), and must still list them all in one order, newest enqueue first.
    db.execute(
        sql.SQL(
            "UPDATE {}.jobs SET state = 'running', lease_expires_at = now() + interval '1 hour'"
            " WHERE (args ->> 'i')::int % 3 = 0"
        ).format(sql.Identifier(namespace))
    )
    seen: list[str] = []
    path = f"/n/{namespace}/jobs?task=bulk.task"
    while path:
        page = client.get(path).text
        seen += re.findall(r'/jobs/(bulk-\d+)"', page)
        found = re.search(r'class="next" href="([^"]+)"', page)
        path = f"/n/{namespace}/jobs" + found.group(1).replace("&amp;", "&") if found else ""
    assert seen == [f"bulk-{i:03d}" for i in reversed(range(120))]
    assert "bulk-007" in client.get(f"/n/{namespace}/jobs?q=bulk-007").text
    assert "bulk-007" not in client.get(f"/n/{namespace}/jobs?state=failed").text


def test_a_text_search_looks_back_a_day_unless_given_since(
    client: TestClient, namespace: str, db: psycopg.Connection[Any]
) -> None:
    db.execute(
        f'INSERT INTO "{namespace}".results (id, task, queue, priority, state, error, attempts,'
        " enqueued_at, finished_at) VALUES ('old-failure', 'old.task', 'default', 0, 'failed',"
        " 'KeyError: vintage', 1, now() - interval '2 days', now() - interval '2 days')"
    )
    bounded = client.get(f"/n/{namespace}/jobs?q=vintage").text
    assert "old-failure" not in bounded and "last 24h" in bounded
    further = client.get(f"/n/{namespace}/jobs?q=vintage&since=3d").text
    assert "/jobs/old-failure" in further and "last 24h" not in further
    assert "/jobs/old-failure" in client.get(f"/n/{namespace}/jobs?q=old-failure").text  # its id


def test_the_overview_shares_a_snapshot_but_shows_an_action_or_a_page_load_at_once(
    database_url: str, namespace: str, app: Stem
) -> None:
    guarded: Any = create_app(database_url, namespace, auth=DashboardAuth())
    guarded.app.state.dashboard.snapshots.fresh_for = 60  # (inside the Guard) kept all the test long
    refresh = {"HX-Request": "true"}  # what the page's live refresh sends
    with TestClient(guarded, follow_redirects=False) as client:
        token = _csrf(client, f"/n/{namespace}/queues/held")
        assert "state-paused" not in client.get(f"/n/{namespace}/", headers=refresh).text
        app.enqueue("late.task", queue="late", task_id="late-1")
        assert 'data-queue="late"' not in client.get(f"/n/{namespace}/", headers=refresh).text  # shared
        assert 'data-queue="late"' in client.get(f"/n/{namespace}/").text  # a page load reads
        done = client.post(f"/n/{namespace}/actions/pause", data={"queue": "held", "csrf": token})
        assert done.status_code == 303, done.text
        overview = client.get(f"/n/{namespace}/", headers=refresh).text
    assert re.search(r'data-queue="held".*?state-paused', overview, re.S)


def test_pause_needs_the_csrf_token(client: TestClient, namespace: str, db: psycopg.Connection[Any]) -> None:
    token = _csrf(client, f"/n/{namespace}/queues/default")
    action = f"/n/{namespace}/actions/pause"
    refused = client.post(action, data={"queue": "default"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert client.post(action, data={"queue": "default", "csrf": "x" * 43}).status_code == 403
    done = client.post(
        action, data={"queue": "default", "csrf": token, "next": f"/n/{namespace}/queues/default"}
    )
    assert done.status_code == 303, done.text
    paused = db.execute(f'SELECT paused_by FROM "{namespace}".paused_queues').fetchall()
    assert paused == [("dashboard:local",)]
    assert "Paused" in client.get(f"/n/{namespace}/queues/default").text
    for elsewhere in ("https://evil.example/", "//evil.example/", "/\\evil.example/"):
        sent = client.post(action, data={"queue": "default", "csrf": token, "next": elsewhere})
        assert sent.headers["location"].startswith(f"/n/{namespace}/?msg="), elsewhere


def test_read_only_hides_and_refuses_actions(database_url: str, namespace: str) -> None:
    for client in _client(database_url, namespace, read_only=True):
        page = client.get(f"/n/{namespace}/queues/default").text
        assert "read-only" in page and "data-action" not in page
        token = client.cookies.get("stem_csrf")
        answer = client.post(f"/n/{namespace}/actions/pause", data={"queue": "default", "csrf": token})
        assert answer.status_code == 403 and "read-only" in answer.text


def test_with_auth_configured_every_page_needs_credentials(database_url: str, namespace: str) -> None:
    auth = DashboardAuth.from_environment(
        {
            "STEM_DASHBOARD_TOKEN": "t0ken",
            "STEM_DASHBOARD_USERS": "ann:pw1\nbob:pw2",
            "STEM_DASHBOARD_READ_ONLY_USERS": "bob",
        }
    )
    for client in _client(database_url, namespace, auth=auth):
        for page in [*PAGES, "/live", "/actions/pause"]:
            answer = client.get(f"/n/{namespace}{page}")
            assert answer.status_code == 401 and "basic" in answer.headers["www-authenticate"].lower(), page
        assert client.get("/static/htmx.min.js").status_code == 401
        assert client.get(f"/n/{namespace}/", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert client.get(f"/n/{namespace}/", headers={"authorization": "Bearer t0ken"}).status_code == 200

        def basic(user: str, password: str) -> dict[str, str]:
            return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

        assert client.get(f"/n/{namespace}/", headers=basic("ann", "nope")).status_code == 401
        assert "data-action" in client.get(f"/n/{namespace}/queues/q", headers=basic("ann", "pw1")).text
        bob = client.get(f"/n/{namespace}/queues/q", headers=basic("bob", "pw2")).text
        assert "read-only" in bob and "data-action" not in bob


def test_security_headers_and_no_secret_on_a_page(database_url: str, namespace: str) -> None:
    secret_url = re.sub(r"://([^@/]+)@", r"://\1:s3cr3t-pw@", database_url)
    for client in _client(secret_url, namespace):
        answer = client.get(f"/n/{namespace}/")
        if answer.status_code != 200:  # the server refused the password: trust auth only
            pytest.skip("the test server does not accept a password in the URL")
        assert "s3cr3t" not in answer.text
        headers = answer.headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert "SameSite=Strict" in headers["set-cookie"] and "HttpOnly" in headers["set-cookie"]


def test_binding_beyond_loopback_needs_authentication() -> None:
    check_bind("127.0.0.1", DashboardAuth())
    check_bind("::1", DashboardAuth())
    with pytest.raises(ConfigError, match=re.escape("0.0.0.0: refusing")):
        check_bind("0.0.0.0", DashboardAuth())
    check_bind("0.0.0.0", DashboardAuth.from_environment({"STEM_DASHBOARD_TOKEN": "x"}))
    with pytest.raises(ConfigError, match="line 1") as caught:
        DashboardAuth.from_environment({"STEM_DASHBOARD_USERS": "nocolonsecret"})
    assert "nocolonsecret" not in str(caught.value)


def test_the_other_actions_go_through_the_library_and_are_logged(
    client: TestClient,
    app: Stem,
    namespace: str,
    db: psycopg.Connection[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    Schedules(app.url, namespace).save(ScheduleEntry(name="nightly", task="t", spec=IntervalSpec(60)))

    @app.workflow(name="wf.dash")
    async def flow(ctx: WorkflowContext) -> str:
        return "done"

    run = app.start_workflow("wf.dash")
    app.enqueue("reports.build", task_id="to-revoke")
    add = app.task(name="c.add")(lambda x: x)
    canvas = chain(add.s(x=1), add.s(x=2)).delay()
    token = _csrf(client, f"/n/{namespace}/schedules")
    caplog.set_level(logging.INFO, logger="stem_pg.dashboard.actions")

    def act(name: str, **fields: str) -> str:
        answer = client.post(f"/n/{namespace}/actions/{name}", data={"csrf": token, **fields})
        assert answer.status_code == 303, answer.text
        return str(parse_qs(urlsplit(answer.headers["location"]).query)["msg"][0])

    assert act("disable", schedule="nightly") == "schedule nightly disabled"
    assert "Enable" in client.get(f"/n/{namespace}/schedules").text
    assert act("enable", schedule="nightly") == "schedule nightly enabled"
    assert act("cancel", run_id=run.id) == f"cancelled {run.id}"
    assert act("revoke", task_id="to-revoke") == "revoke to-revoke: cancelled"
    assert act("enable", schedule="nope").startswith("enable failed: ")
    status = db.execute(f'SELECT status FROM "{namespace}".wf_runs WHERE id = %s', (run.id,)).fetchone()
    assert status == ("cancelled",)
    state = db.execute(f'SELECT state FROM "{namespace}".results WHERE id = %s', ("to-revoke",)).fetchone()
    assert state == ("cancelled",)
    assert f"dashboard action disable on {namespace} by local: schedule nightly disabled" in caplog.text
    assert run.id in client.get(f"/n/{namespace}/workflows?status=cancelled").text
    assert "wf.dash" in client.get(f"/n/{namespace}/workflows/{run.id}").text
    assert canvas.id in client.get(f"/n/{namespace}/canvases").text
    assert "c.add" in client.get(f"/n/{namespace}/canvases/{canvas.id}").text


def test_a_role_that_may_not_read_or_act_gets_a_clear_answer(
    database_url: str, namespace: str, db: psycopg.Connection[Any]
) -> None:
    superuser = db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if not superuser or not superuser[0]:
        pytest.skip("needs a superuser to create a role")
    role = f"stem_viewer_{uuid.uuid4().hex[:8]}"
    db.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        for grant in (
            "GRANT CONNECT ON DATABASE {db} TO {role}",
            "GRANT USAGE ON SCHEMA {ns} TO {role}",
            "GRANT SELECT ON {ns}.jobs TO {role}",
        ):
            db.execute(
                sql.SQL(grant).format(
                    db=sql.Identifier(db.info.dbname), ns=sql.Identifier(namespace), role=sql.Identifier(role)
                )
            )
        for client in _client(url_as(database_url, role), namespace):
            page = client.get(f"/n/{namespace}/dead")
            assert page.status_code == 403 and "may not read" in page.text and "Traceback" not in page.text
            token = client.cookies.get("stem_csrf") or ""
            done = client.post(f"/n/{namespace}/actions/pause", data={"queue": "q", "csrf": token})
            assert done.status_code == 303 and "pause+failed" in done.headers["location"]
    finally:
        db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_mounted_inside_another_asgi_app(database_url: str, namespace: str) -> None:
    outer = Starlette(routes=[Mount("/stem", app=create_app(database_url, namespace, auth=DashboardAuth()))])
    with TestClient(outer, follow_redirects=False) as client:
        home = client.get("/stem/")
        assert home.headers["location"] == f"/stem/n/{namespace}/"
        assert "Path=/stem/" in home.headers["set-cookie"]
        page = client.get(f"/stem/n/{namespace}/queues/default")
        assert page.status_code == 200 and 'href="/stem/static/dashboard.css"' in page.text
        assert client.get("/stem/static/htmx.min.js").status_code == 200
        token = _csrf(client, f"/stem/n/{namespace}/queues/default")
        done = client.post(
            f"/stem/n/{namespace}/actions/pause",
            data={"queue": "default", "csrf": token, "next": f"/stem/n/{namespace}/queues/default"},
        )
        assert done.headers["location"].startswith(f"/stem/n/{namespace}/queues/default?msg=")
