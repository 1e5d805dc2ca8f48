"""The actions: each checks the principal and the CSRF token, calls the same library
function as the CLI, logs who did it, and redirects back with a one-line outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlencode

from psycopg.errors import InsufficientPrivilege, ReadOnlySqlTransaction
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from stem_pg.client.control import Control
from stem_pg.client.schedules import Schedules
from stem_pg.client.workflows import cancel
from stem_pg.core.errors import StemError
from stem_pg.core.redaction import one_line, redact
from stem_pg.dashboard.context import Dashboard, dashboard_of, namespace_of
from stem_pg.dashboard.security import check_csrf
from stem_pg.dashboard.settings import Principal
from stem_pg.db.stores.dead_letters import DeadLetterFilter, DeadLetterStore

log = logging.getLogger("stem_pg.dashboard.actions")

#: How long an action waits for workers to acknowledge it (the change is already stored).
ACK_TIMEOUT = 1.0

READ_ONLY_DATABASE = (
    "the database is read-only (a standby or read replica): actions need the primary;"
    " use a dashboard pointed at it"
)

Action = Callable[[Dashboard, str, dict[str, str], Principal], str]


async def act(request: Request) -> Response:
    """POST /n/{ns}/actions/{name}: refuse without the right, the token, or a known name."""
    dash, ns = dashboard_of(request), namespace_of(request)
    principal: Principal = request.state.principal
    name = request.path_params["name"]
    if not principal.can_act:
        return PlainTextResponse("403 Forbidden: this dashboard (or this user) is read-only\n", 403)
    form = await request.form()
    if not check_csrf(request, form):
        return PlainTextResponse("403 Forbidden: missing or wrong CSRF token; reload the page\n", 403)
    action = ACTIONS.get(name)
    if action is None:
        return PlainTextResponse(f"404 Not Found: no action {name[:40]!r}\n", 404)
    fields = {k: str(v)[:500] for k, v in form.items() if isinstance(v, str)}
    try:
        outcome = await dash.call(lambda: action(dash, ns, fields, principal))
    except KeyError as exc:
        outcome = f"{name} failed: the form has no {exc.args[0]!r} field"
    except ReadOnlySqlTransaction:  # a hot standby (read replica): it refuses writes and LISTEN
        outcome = f"{name} failed: {READ_ONLY_DATABASE}"
    except (StemError, ValueError, InsufficientPrivilege) as exc:
        outcome = f"{name} failed: {one_line(redact(str(exc)))}"
    dash.snapshots.forget(ns)  # the next overview shows what the action changed
    log.info("dashboard action %s on %s by %s: %s", name, ns, principal.name, outcome)
    back = fields.get("next", "")
    if not back.startswith("/") or back.startswith("//") or "\\" in back:  # only a path of this site
        back = f"{request.scope.get('root_path', '')}/n/{ns}/"
    sep = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{sep}{urlencode({'msg': outcome})}", status_code=303)


def _control(dash: Dashboard, ns: str) -> Control:
    return Control.of(dash.backend(ns))


def pause(dash: Dashboard, ns: str, form: dict[str, str], who: Principal) -> str:
    queue = form["queue"]
    _control(dash, ns).pause(
        queue, reason=form.get("reason") or None, by=f"dashboard:{who.name}", timeout=ACK_TIMEOUT
    )
    return f"queue {queue} paused"


def resume(dash: Dashboard, ns: str, form: dict[str, str], who: Principal) -> str:
    queue = form["queue"]
    lifted = _control(dash, ns).resume(queue, timeout=ACK_TIMEOUT).queue
    return f"queue {queue} resumed" if lifted else f"queue {queue} was not paused"


def revoke(dash: Dashboard, ns: str, form: dict[str, str], who: Principal) -> str:
    task_id = form["task_id"]
    terminate = form.get("terminate") == "on"
    result = _control(dash, ns).revoke(
        [task_id], terminate=terminate, reason=f"by {who.name} (dashboard)", timeout=ACK_TIMEOUT
    )
    outcome = result.revokes[0].outcome if result.revokes else "unknown"
    return f"revoke {task_id}: {outcome}"


def replay(dash: Dashboard, ns: str, form: dict[str, str], who: Principal) -> str:
    key = form["task_id"]
    backend = dash.backend(ns)
    with backend.pool.connection() as conn:
        replayed = DeadLetterStore(backend.queries).replay(conn, where=DeadLetterFilter(limit=1), key=key)
    return f"replayed {key}" if replayed else f"{key} was not replayed (already replayed, or no dead letter)"


def purge(dash: Dashboard, ns: str, form: dict[str, str], who: Principal) -> str:
    queue = form.get("queue") or None
    backend = dash.backend(ns)
    with backend.pool.connection() as conn:
        count = DeadLetterStore(backend.queries).purge(conn, where=DeadLetterFilter(queue=queue))
    return f"purged {count} dead letters" + (f" of queue {queue}" if queue else "")


def enable(dash: Dashboard, ns: str, form: dict[str, str], who: Principal) -> str:
    name = form["schedule"]
    Schedules.of(dash.backend(ns)).set_enabled(name, True)
    return f"schedule {name} enabled"


def disable(dash: Dashboard, ns: str, form: dict[str, str], who: Principal) -> str:
    name = form["schedule"]
    Schedules.of(dash.backend(ns)).set_enabled(name, False)
    return f"schedule {name} disabled"


def cancel_run(dash: Dashboard, ns: str, form: dict[str, str], who: Principal) -> str:
    run_id = form["run_id"]
    cancelled = cancel(dash.backend(ns), run_id, f"cancelled by {who.name} (dashboard)")
    return f"cancelled {', '.join(cancelled)}" if cancelled else f"run {run_id} had already ended"


ACTIONS: dict[str, Action] = {
    "pause": pause,
    "resume": resume,
    "revoke": revoke,
    "replay": replay,
    "purge": purge,
    "enable": enable,
    "disable": disable,
    "cancel": cancel_run,
}
