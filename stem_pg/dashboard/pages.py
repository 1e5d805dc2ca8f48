"""The read-only pages: each reads through the dashboard store and renders one template."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from stem_pg.client.schedules import Schedules
from stem_pg.core.states import TaskState
from stem_pg.core.workflows import RunStatus
from stem_pg.dashboard import charts
from stem_pg.dashboard.context import dashboard_of, namespace_of, parse_time
from stem_pg.dashboard.live import event_stream
from stem_pg.dashboard.workers import workers
from stem_pg.db.stores.dashboard import Conn, DashboardStore
from stem_pg.db.stores.dashboard_rows import JobFilter

PAGE = 50
#: How far back a text search looks when the filter gives no "since": a substring cannot use
#: an index, so an unbounded search would read every job a big namespace ever ran.
SEARCH_WITHIN = "24h"
STATES = [s.value for s in TaskState]
RUN_STATUSES = [s.value for s in RunStatus]


def _text(request: Request, name: str, limit: int = 200) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value[:limit] or None


def _key(request: Request) -> tuple[datetime, str] | None:
    """The page key (``at``, ``after``) of a "next page" link."""
    at = request.query_params.get("at")
    if not at:
        return None
    try:
        return datetime.fromisoformat(at), request.query_params.get("after", "")
    except ValueError:
        raise HTTPException(400, "at: not an ISO time") from None


def _int(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if not value:
        return None
    if not value.isdigit():
        raise HTTPException(400, f"{name}: not a number")
    return int(value)


async def _namespaces(request: Request) -> list[str]:
    dash, ns = dashboard_of(request), namespace_of(request)
    found = await dash.read(ns, lambda store, conn: store.namespaces(conn))
    if ns not in found:
        raise HTTPException(404, "no such namespace (or this role may not read it)")
    return found


async def overview(request: Request) -> Response:
    dash, ns = dashboard_of(request), namespace_of(request)
    namespaces = await _namespaces(request)

    def read(store: DashboardStore, conn: Conn) -> dict[str, Any]:
        return {
            "queues": store.queue_summaries(conn),
            "minutes": store.minutes(conn),
            "failures": store.recent_failures(conn, limit=10),
            "workers": workers(store, conn, {}),
        }

    live_refresh = request.headers.get("hx-request") == "true"  # htmx, not a page load
    data = await dash.read_snapshot(ns, read, reuse=live_refresh)
    axis = charts.minute_axis()
    minutes = data["minutes"]
    per_queue = charts.per_queue(minutes, axis)
    sparks = {
        queue: {name: charts.sparkline(values) for name, values in series.items()}
        for queue, series in per_queue.items()
    }
    return dash.render(
        request,
        "overview.html",
        namespaces=namespaces,
        sparks=sparks,
        chart=charts.overall(minutes, axis),
        queues=data["queues"],
        failures=data["failures"],
        workers=data["workers"],
    )


async def queue_detail(request: Request) -> Response:
    dash, ns = dashboard_of(request), namespace_of(request)
    queue = request.path_params["queue"]
    namespaces = await _namespaces(request)

    def read(store: DashboardStore, conn: Conn) -> dict[str, Any]:
        health = [q for q in store.queues(conn) if q.queue == queue]
        return {"health": health[0] if health else None, "buckets": store.buckets(conn, queue=queue)}

    data = await dash.read(ns, read)
    return dash.render(request, "queue.html", namespaces=namespaces, queue=queue, **data)


async def jobs(request: Request) -> Response:
    dash, ns = dashboard_of(request), namespace_of(request)
    namespaces = await _namespaces(request)
    state = _text(request, "state")
    if state is not None and state not in STATES:
        raise HTTPException(400, f"state: one of {', '.join(STATES)}")
    search, since = _text(request, "q"), _text(request, "since")
    bounded = search is not None and since is None  # an id still matches however old (by key)
    where = JobFilter(
        state=state,
        task=_text(request, "task"),
        queue=_text(request, "queue"),
        since=parse_time(SEARCH_WITHIN if bounded else since),
        until=parse_time(_text(request, "until")),
        search=search,
    )
    rows = await dash.read(
        ns, lambda store, conn: store.jobs(conn, where=where, before=_key(request), limit=PAGE)
    )
    filters = {k: v for k, v in request.query_params.items() if k not in ("at", "after", "msg")}
    return dash.render(
        request,
        "jobs.html",
        namespaces=namespaces,
        rows=rows,
        filters=filters,
        states=STATES,
        page=PAGE,
        search_within=SEARCH_WITHIN if bounded else None,
    )


async def job_detail(request: Request) -> Response:
    dash, ns = dashboard_of(request), namespace_of(request)
    job_id = request.path_params["id"]
    namespaces = await _namespaces(request)

    def read(store: DashboardStore, conn: Conn) -> dict[str, Any]:
        live = store.live_job(conn, id=job_id)
        return {
            "live": live,
            "result": store.result(conn, id=job_id),
            "dead": store.dead_of(conn, id=job_id),
            "canvas": store.canvas_of(conn, id=job_id),
            "workflow": (live.headers.get("stem-workflow") if live else None),
        }

    data = await dash.read(ns, read)
    if not (data["live"] or data["result"] or data["dead"]):
        return dash.render(request, "missing.html", 404, namespaces=namespaces, what=f"job {job_id}")
    return dash.render(request, "job.html", namespaces=namespaces, job_id=job_id, **data)


async def dead_letters(request: Request) -> Response:
    dash, ns = dashboard_of(request), namespace_of(request)
    namespaces = await _namespaces(request)
    queue = _text(request, "queue")
    before = _int(request, "before")
    rows = await dash.read(
        ns, lambda store, conn: store.dead_letters(conn, queue=queue, before=before, limit=PAGE)
    )
    return dash.render(request, "dead.html", namespaces=namespaces, rows=rows, queue=queue, page=PAGE)


async def workers_page(request: Request) -> Response:
    dash, ns = dashboard_of(request), namespace_of(request)
    namespaces = await _namespaces(request)
    beats = dict(dash.feeds.of(ns).beats)
    rows = await dash.read(ns, lambda store, conn: workers(store, conn, beats))
    return dash.render(
        request,
        "workers.html",
        namespaces=namespaces,
        workers=rows,
        live_trigger="stem:refresh from:body, stem:beat from:body",
    )


async def schedules(request: Request) -> Response:
    dash, ns = dashboard_of(request), namespace_of(request)
    namespaces = await _namespaces(request)
    rows = await dash.call(lambda: Schedules.of(dash.backend(ns)).list())
    return dash.render(
        request, "schedules.html", namespaces=namespaces, rows=rows, now=datetime.now().astimezone()
    )


async def workflows(request: Request) -> Response:
    dash, ns = dashboard_of(request), namespace_of(request)
    namespaces = await _namespaces(request)
    status = _text(request, "status") or "running"
    if status not in RUN_STATUSES:
        raise HTTPException(400, f"status: one of {', '.join(RUN_STATUSES)}")
    rows = await dash.read(
        ns, lambda store, conn: store.runs(conn, status=status, before=_key(request), limit=PAGE)
    )
    return dash.render(
        request,
        "workflows.html",
        namespaces=namespaces,
        rows=rows,
        status=status,
        statuses=RUN_STATUSES,
        page=PAGE,
    )


async def workflow_detail(request: Request) -> Response:
    dash, ns = dashboard_of(request), namespace_of(request)
    run_id = request.path_params["id"]
    namespaces = await _namespaces(request)

    def read(store: DashboardStore, conn: Conn) -> dict[str, Any]:
        return {"run": store.run(conn, id=run_id), "steps": store.steps(conn, id=run_id)}

    data = await dash.read(ns, read)
    if data["run"] is None:
        return dash.render(request, "missing.html", 404, namespaces=namespaces, what=f"workflow run {run_id}")
    return dash.render(request, "workflow.html", namespaces=namespaces, **data)


async def canvases(request: Request) -> Response:
    dash, ns = dashboard_of(request), namespace_of(request)
    namespaces = await _namespaces(request)
    rows = await dash.read(ns, lambda store, conn: store.canvases(conn, before=_key(request), limit=PAGE))
    return dash.render(request, "canvases.html", namespaces=namespaces, rows=rows, page=PAGE)


async def canvas_detail(request: Request) -> Response:
    dash, ns = dashboard_of(request), namespace_of(request)
    canvas_id = request.path_params["id"]
    namespaces = await _namespaces(request)
    members = await dash.read(ns, lambda store, conn: store.members(conn, id=canvas_id))
    return dash.render(request, "canvas.html", namespaces=namespaces, canvas_id=canvas_id, members=members)


async def broadcasts(request: Request) -> Response:
    dash, ns = dashboard_of(request), namespace_of(request)
    namespaces = await _namespaces(request)
    before = _int(request, "before")
    rows = await dash.read(ns, lambda store, conn: store.broadcasts(conn, before=before, limit=PAGE))
    return dash.render(request, "broadcasts.html", namespaces=namespaces, rows=rows, page=PAGE)


async def broadcast_detail(request: Request) -> Response:
    dash, ns = dashboard_of(request), namespace_of(request)
    message_id = request.path_params["id"]
    namespaces = await _namespaces(request)
    rows = await dash.read(ns, lambda store, conn: store.deliveries(conn, id=message_id))
    return dash.render(request, "broadcast.html", namespaces=namespaces, message_id=message_id, rows=rows)


async def live(request: Request) -> Response:
    dash, ns = dashboard_of(request), namespace_of(request)
    feed = dash.feeds.of(ns)
    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(event_stream(feed), media_type="text/event-stream", headers=headers)
