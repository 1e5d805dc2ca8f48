"""What every page and action shares: the database side of each namespace, the templates."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from stem_pg.client.backend import Backend
from stem_pg.core.errors import ConfigError
from stem_pg.core.namespaces import validate_namespace
from stem_pg.dashboard.live import Feeds
from stem_pg.dashboard.settings import Principal
from stem_pg.dashboard.snapshots import Snapshots
from stem_pg.db.stores.dashboard import Conn, DashboardStore

T = TypeVar("T")
POOL_SIZE = 4


class Dashboard:
    """One dashboard app's state: a Backend (pool, queries) per namespace opened, the feeds."""

    def __init__(
        self, url: str, namespace: str, *, read_only: bool, title: str, listen_url: str | None
    ) -> None:
        self.url = url
        self.default_namespace = validate_namespace(namespace)
        self.read_only = read_only
        self.title = title
        self.feeds = Feeds(listen_url)
        self.snapshots = Snapshots()
        self._backends: dict[str, Backend] = {}
        self._lock = threading.Lock()
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("stem_pg.dashboard", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters.update(age=age, when=when, seconds=seconds, pretty=pretty)

    def backend(self, namespace: str) -> Backend:
        with self._lock:
            found = self._backends.get(namespace)
            if found is None:
                found = self._backends[namespace] = Backend(self.url, namespace, pool_size=POOL_SIZE)
            return found

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()

    async def read(self, namespace: str, work: Callable[[DashboardStore, Conn], T]) -> T:
        """Run ``work`` with the namespace's store on a pooled connection, off the event loop."""
        return await run_in_threadpool(self._pooled(namespace, work))

    async def read_snapshot(
        self, namespace: str, work: Callable[[DashboardStore, Conn], T], *, reuse: bool
    ) -> T:
        """``read``, or (if ``reuse``) the namespace's snapshot while it is fresh (see
        ``snapshots``); the value is shared by every caller: never change it."""
        version = self.feeds.version_of(namespace)
        run = self._pooled(namespace, work)
        found: T = await run_in_threadpool(self.snapshots.get, namespace, version, run, reuse=reuse)
        return found

    def _pooled(self, namespace: str, work: Callable[[DashboardStore, Conn], T]) -> Callable[[], T]:
        backend = self.backend(namespace)

        def run() -> T:
            with backend.pool.connection() as conn:
                return work(DashboardStore(backend.queries), conn)

        return run

    async def call(self, work: Callable[[], T]) -> T:
        return await run_in_threadpool(work)

    def render(self, request: Request, template: str, http_status: int = 200, **values: Any) -> HTMLResponse:
        principal: Principal = request.state.principal
        namespace = request.path_params.get("ns", self.default_namespace)
        page = self.templates.get_template(template).render(
            request=request,
            ns=namespace,
            base=request.scope.get("root_path", ""),
            principal=principal,
            can_act=principal.can_act,
            csrf=request.state.csrf,
            title=self.title,
            message=request.query_params.get("msg"),
            namespaces=values.pop("namespaces", [namespace]),
            **values,
        )
        return HTMLResponse(page, status_code=http_status, headers={"cache-control": "no-store"})


def namespace_of(request: Request) -> str:
    """The namespace in the path; 404 for a name that cannot be one."""
    try:
        return validate_namespace(request.path_params["ns"])
    except ConfigError:
        raise HTTPException(404, "no such namespace") from None


def dashboard_of(request: Request) -> Dashboard:
    found: Dashboard = request.app.state.dashboard
    return found


# -- template filters ------------------------------------------------------------------


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    if value < 172800:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"


def age(moment: datetime | None) -> str:
    """How long ago ``moment`` was (or, prefixed "in", how far ahead)."""
    if moment is None:
        return "-"
    delta = (datetime.now(moment.tzinfo) - moment).total_seconds()
    return f"{seconds(delta)} ago" if delta >= 0 else f"in {seconds(-delta)}"


def when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def pretty(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, sort_keys=True, default=str)


def parse_time(text: str | None) -> datetime | None:
    """A time filter: ISO text, or a duration back ('1h', '30m')."""
    if not text:
        return None
    from stem_pg.core.durations import parse_since

    try:
        return parse_since(text)
    except ValueError:
        raise HTTPException(400, f"not a time: {text[:40]!r} (give 1h, 30m or an ISO time)") from None
