"""``create_app``: the dashboard as an ASGI app, to serve alone (``stem dashboard``) or to
mount inside an application's own ASGI app."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg.errors import InsufficientPrivilege
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from stem_pg.client.backend import Backend
from stem_pg.config.settings import StemConfig
from stem_pg.core.redaction import one_line, redact
from stem_pg.dashboard import actions, pages
from stem_pg.dashboard.context import Dashboard
from stem_pg.dashboard.security import Guard
from stem_pg.dashboard.settings import DashboardAuth


def create_app(
    url: str,
    namespace: str = "stem",
    *,
    auth: DashboardAuth | None = None,
    read_only: bool = False,
    title: str = "stem dashboard",
    direct_url: str | None = None,
) -> Guard:
    """The dashboard of the database at ``url``, opening on ``namespace``.

    ``auth``: the accepted credentials (default: from the STEM_DASHBOARD_* environment;
    none configured means no sign-in, which ``stem dashboard`` allows on 127.0.0.1 only).
    ``read_only``: show no action and refuse every one. ``direct_url`` (default:
    STEM_DIRECT_URL): where the live feed LISTENs when ``url`` is a transaction pooler
    (``?stem_pooler=transaction``); without one, pages behind a pooler poll. Mount it like
    any ASGI app::

        app.mount("/stem", create_app(url, "prod"))

    Raises ConfigError for a malformed namespace, URL or STEM_DASHBOARD_* value.
    """
    auth = auth if auth is not None else DashboardAuth.from_environment(os.environ)
    direct = direct_url if direct_url is not None else StemConfig.from_environment().direct_url
    listen_url = Backend.listening_url(url, direct)
    dash = Dashboard(url, namespace, read_only=read_only, title=title, listen_url=listen_url)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await dash.feeds.stop()
            dash.close()

    async def home(request: Request) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/n/{dash.default_namespace}/")

    async def switch(request: Request) -> Response:
        ns = request.query_params.get("ns") or dash.default_namespace
        return RedirectResponse(f"{request.scope.get('root_path', '')}/n/{ns}/", status_code=303)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return PlainTextResponse(f"{exc.status_code}: {exc.detail}\n", exc.status_code)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        """The database role may not read this page's tables (a producer role, say)."""
        return PlainTextResponse(
            f"403: the database role may not read this: {one_line(redact(str(exc)))}\n", 403
        )

    routes = [
        Route("/", home),
        Route("/switch", switch),
        Mount("/static", StaticFiles(packages=[("stem_pg.dashboard", "static")]), name="static"),
        Route("/n/{ns}/", pages.overview),
        Route("/n/{ns}/live", pages.live),
        Route("/n/{ns}/queues/{queue:path}", pages.queue_detail),
        Route("/n/{ns}/jobs", pages.jobs),
        Route("/n/{ns}/jobs/{id:path}", pages.job_detail),
        Route("/n/{ns}/dead", pages.dead_letters),
        Route("/n/{ns}/workers", pages.workers_page),
        Route("/n/{ns}/schedules", pages.schedules),
        Route("/n/{ns}/workflows", pages.workflows),
        Route("/n/{ns}/workflows/{id:path}", pages.workflow_detail),
        Route("/n/{ns}/canvases", pages.canvases),
        Route("/n/{ns}/canvases/{id:path}", pages.canvas_detail),
        Route("/n/{ns}/broadcasts", pages.broadcasts),
        Route("/n/{ns}/broadcasts/{id:int}", pages.broadcast_detail),
        Route("/n/{ns}/actions/{name}", actions.act, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, InsufficientPrivilege: not_allowed},
    )
    app.state.dashboard = dash
    return Guard(app, auth=auth, read_only=read_only)
