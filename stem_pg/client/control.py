"""Controlling workers from outside: command rows in, reply rows gathered until a timeout.

A command is a row of ``control_commands`` (so only roles granted INSERT on it
command workers); a NOTIFY on the namespace's control channel (every worker) or on
the own channels of the workers named only wakes them up to read it. Each worker
writes its reply as a row of ``control_replies`` and hints the asker on a channel
derived from the command's id; the asker re-reads the table on every hint (a
forged one just costs a read) and every ``_REREAD`` seconds. Workers expected to
answer (those alive in the heartbeat table, or the ones named) and silent until
the timeout are reported as ``missing``. Channels and tables belong to the
namespace, so commands and replies never cross namespaces.

Revokes and pauses are written to the namespace first (they persist, and
workers that start later honour them) and announced in the same transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg.sql import SQL, Identifier

from stem_pg.client.backend import DEFAULT_RESULT_TTL, Backend
from stem_pg.core.control import DEFAULT_TIMEOUT, Command, Reply, ShutdownMode, request_key, worker_key
from stem_pg.core.envelope import check_name, check_task_id
from stem_pg.core.errors import TaskError
from stem_pg.core.namespaces import validate_namespace
from stem_pg.core.storable import check_text, shown
from stem_pg.db.connect import connection
from stem_pg.db.queries import Queries, queries_for
from stem_pg.db.stores.control import ControlClientStore, PausedQueue, RevokeOutcome, SyncConn
from stem_pg.db.stores.workers import WorkerRow, WorkerStore

log = logging.getLogger(__name__)

#: How long a revoke is kept (and honoured) unless told otherwise.
DEFAULT_REVOKE_EXPIRY = 24 * 3600.0
#: Workers count as expected to answer while their heartbeat is younger than this.
ALIVE_WITHIN = 60.0
#: Bytes of task ids a revoke command lists (workers read the revokes from the table
#: anyway; the list only lets them say which of these they held).
_IDS_IN_NOTIFY = 4000
#: Replies are re-read at least this often even without a wake-up hint.
_REREAD = 1.0


@dataclass(frozen=True)
class ControlResult:
    """The replies to one command, by worker id, and the expected workers that stayed silent."""

    command: str
    replies: dict[str, Reply] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    revokes: list[RevokeOutcome] = field(default_factory=list)
    queue: PausedQueue | None = None
    terminate: bool = False

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "command": self.command,
            "replies": {
                worker: (reply.data if reply.ok else {"error": reply.error})
                for worker, reply in sorted(self.replies.items())
            },
            "missing": self.missing,
        }
        if self.revokes:
            body["revokes"] = [_revoke_dict(o, self.terminate) for o in self.revokes]
        if self.queue is not None:
            body["queue"] = {
                "queue": self.queue.queue,
                "paused_at": self.queue.paused_at,
                "paused_by": self.queue.paused_by,
                "reason": self.queue.reason,
            }
        return body


class Control:
    """The control plane of one namespace, seen from a client (CLI or application)."""

    def __init__(self, url: str, namespace: str, *, result_ttl: float = DEFAULT_RESULT_TTL) -> None:
        self.url = url
        self.queries: Queries = queries_for(validate_namespace(namespace))
        self.store = ControlClientStore(self.queries)
        self.result_ttl = result_ttl

    @classmethod
    def of(cls, backend: Backend) -> Control:
        """The control plane of an application's namespace (its URL, the direct one behind a
        pooler: replies are awaited with LISTEN; and its result retention)."""
        return cls(backend.listen_url or backend.url, backend.namespace, result_ttl=backend.result_ttl)

    # -- commands ------------------------------------------------------------------

    def ping(self, workers: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT) -> ControlResult:
        return self.call("ping", workers=workers, timeout=timeout)

    def stats(self, workers: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT) -> ControlResult:
        return self.call("stats", workers=workers, timeout=timeout)

    def inspect(self, workers: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT) -> ControlResult:
        return self.call("inspect", workers=workers, timeout=timeout)

    def shutdown(
        self, mode: ShutdownMode = "warm", workers: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT
    ) -> ControlResult:
        """Stop workers: ``warm`` drains, ``soft`` interrupts running tasks, ``hard`` stops at once."""
        return self.call("shutdown", {"mode": mode}, workers=workers, timeout=timeout)

    def pause(
        self,
        queue: str,
        *,
        reason: str | None = None,
        by: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> ControlResult:
        """Pause ``queue`` for the whole namespace (kept across restarts) and tell the workers."""
        _check_queue(queue)
        for what, text in (("reason", reason), ("by", by)):
            if text is not None:
                check_text(text, what=what)
        written: list[PausedQueue] = []

        def write(conn: SyncConn) -> None:
            written.append(self.store.pause(conn, queue=queue, paused_by=by, reason=reason))

        result = self.call("pause", {"queue": queue}, timeout=timeout, before_send=write)
        return ControlResult(result.command, result.replies, result.missing, queue=written[0])

    def resume(self, queue: str, *, timeout: float = DEFAULT_TIMEOUT) -> ControlResult:
        """Resume ``queue``; ``queue`` of the result is the pause that was lifted (None if none)."""
        _check_queue(queue)
        lifted: list[PausedQueue | None] = []

        def write(conn: SyncConn) -> None:
            lifted.append(self.store.resume(conn, queue=queue))

        result = self.call("resume", {"queue": queue}, timeout=timeout, before_send=write)
        return ControlResult(result.command, result.replies, result.missing, queue=lifted[0])

    def paused(self) -> list[PausedQueue]:
        with connection(self.url, role="control") as conn:
            return self.store.paused(conn)

    def revoke(
        self,
        task_ids: Iterable[str],
        *,
        terminate: bool = False,
        reason: str | None = None,
        expires_in: float | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> ControlResult:
        """Revoke tasks and, unless ``timeout`` is None, gather what the workers did about it."""
        ids = _check_ids(task_ids)
        if reason is not None:
            check_text(reason, what="reason")
        outcomes: list[RevokeOutcome] = []

        def write(conn: SyncConn) -> bool:
            outcomes.extend(self._apply_revokes(conn, ids, terminate, reason, expires_in))
            return any(o.version is not None for o in outcomes)

        args = {"ids": _fitting(ids, _IDS_IN_NOTIFY), "terminate": terminate}
        if timeout is None:
            with connection(self.url, role="control") as conn, conn.transaction():
                if write(conn):
                    self._send(conn, Command("revoke", args=args), (), wants_reply=False)
            return ControlResult("revoke", revokes=outcomes, terminate=terminate)
        result = self.call("revoke", args, timeout=timeout, before_send=write)
        return ControlResult(
            result.command, result.replies, result.missing, revokes=outcomes, terminate=terminate
        )

    def _apply_revokes(
        self, conn: SyncConn, ids: list[str], terminate: bool, reason: str | None, expires_in: float | None
    ) -> list[RevokeOutcome]:
        expiry = DEFAULT_REVOKE_EXPIRY if expires_in is None else expires_in
        if not expiry > 0:
            raise TaskError(f"revoke expiry must be a positive number of seconds, got {expires_in!r}")
        self.store.lock_revokes(conn)
        return self.store.apply_revokes(
            conn,
            ids=ids,
            reason=reason,
            terminate=terminate,
            expires_in=expiry,
            error=f"revoked: {reason}" if reason else "revoked",
            result_ttl=self.result_ttl,
        )

    # -- the round trip --------------------------------------------------------------

    def call(
        self,
        command: str,
        args: dict[str, Any] | None = None,
        *,
        workers: Sequence[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
        before_send: Callable[[SyncConn], object] | None = None,
    ) -> ControlResult:
        """Send ``command`` (after ``before_send`` wrote its rows, in one transaction) and
        gather replies until every expected worker answered or ``timeout`` passed.
        ``before_send`` returning False means there is nothing to announce."""
        targets = tuple(dict.fromkeys(workers))
        cmd = Command(command, args=args or {}, targets=targets)
        reply_channel = self.queries.channels.reply(request_key(cmd.id))
        with connection(self.url, role="control") as conn:
            expected = set(targets) or {w.id for w in self.workers(conn) if w.status == "alive"}
            conn.execute(SQL("LISTEN {}").format(Identifier(reply_channel)))
            with conn.transaction():
                announce = before_send(conn) if before_send is not None else True
                if announce is not False:
                    self._send(conn, cmd, targets)
            if announce is False:
                return ControlResult(command)
            replies = self._gather(conn, cmd, expected, timeout)
        return ControlResult(command, replies, sorted(expected - replies.keys()))

    def workers(self, conn: SyncConn, *, stale_after: float = ALIVE_WITHIN) -> list[WorkerRow]:
        return WorkerStore(self.queries).list(conn, stale_after=stale_after)

    def _send(
        self, conn: SyncConn, cmd: Command, targets: Sequence[str], *, wants_reply: bool = True
    ) -> None:
        """Write the command row, then wake its workers (inside the caller's transaction:
        both take effect at commit). The NOTIFY payload is empty: workers read the row."""
        cmd.encode()  # refuses a command larger than the wire allows
        self.store.insert_command(
            conn,
            request_id=cmd.id,
            command=cmd.command,
            args=cmd.args,
            targets=targets,
            wants_reply=wants_reply,
        )
        channels = self.queries.channels
        for channel in dict.fromkeys(channels.worker(worker_key(t)) for t in targets) or [channels.control]:
            self.store.notify(conn, channel=channel, payload="")

    def _gather(self, conn: SyncConn, cmd: Command, expected: set[str], timeout: float) -> dict[str, Reply]:
        replies: dict[str, Reply] = {}
        deadline = time.monotonic() + timeout
        while True:
            for stored in self.store.take_replies(conn, request_id=cmd.id):
                replies[stored.worker_id] = _reply(cmd.id, stored.worker_id, stored.payload)
            remaining = deadline - time.monotonic()
            if (expected and expected <= replies.keys()) or remaining <= 0:
                break
            # A hint (whatever its payload, whoever sent it) or the re-read period: read again.
            for _note in conn.notifies(timeout=min(remaining, _REREAD), stop_after=1):
                pass
        return replies


def _reply(request_id: str, worker_id: str, body: dict[str, Any]) -> Reply:
    data = body.get("data") if isinstance(body, dict) else None
    error = body.get("error") if isinstance(body, dict) else None
    return Reply(
        request_id,
        worker_id,
        ok=bool(body.get("ok", True)) if isinstance(body, dict) else False,
        data=data if isinstance(data, dict) else {},
        error=error if isinstance(error, str) or error is None else str(error),
    )


def _check_queue(queue: object) -> None:
    if not isinstance(queue, str) or not queue.strip():
        raise TaskError(f"queue must be a non-empty name, got {shown(queue)}")
    check_name(queue, what="queue")


def _check_ids(task_ids: Iterable[str]) -> list[str]:
    ids = [task_ids] if isinstance(task_ids, str) else list(task_ids)
    if not ids:
        raise TaskError("revoke needs at least one task id")
    for index, task_id in enumerate(ids):
        check_task_id(task_id, what=f"task id {index}")
    return list(dict.fromkeys(ids))


def _fitting(ids: list[str], budget: int) -> list[str]:
    """The first ids whose JSON fits in ``budget`` bytes."""
    chosen, used = [], 0
    for task_id in ids:
        used += len(task_id.encode()) + 4
        if used > budget:
            break
        chosen.append(task_id)
    return chosen


def _revoke_dict(outcome: RevokeOutcome, terminate: bool) -> dict[str, Any]:
    return {
        "task_id": outcome.task_id,
        "outcome": outcome.outcome,
        "state": outcome.state,
        "worker_id": outcome.worker_id,
        "version": outcome.version,
        "message": describe_revoke(outcome, terminate=terminate),
    }


def describe_revoke(outcome: RevokeOutcome, *, terminate: bool = False) -> str:
    """One line for people: what the revoke did to this task."""
    if outcome.outcome == "cancelled":
        return "was waiting; cancelled now"
    if outcome.outcome == "revoked":
        where = f" on worker {outcome.worker_id}" if outcome.worker_id else ""
        if terminate and outcome.state == "running":
            return f"running{where}; revoked, terminating it"
        return f"{outcome.state}{where}; revoked, it will not start again"
    if outcome.outcome == "finished":
        return f"already finished ({outcome.state}); nothing changed"
    return "no such task (yet); recorded, it will never start"
