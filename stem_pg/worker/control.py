"""The worker's side of the control plane: command rows in, reply rows out.

A command is a row of ``control_commands`` (only roles granted INSERT write one).
A NOTIFY on the namespace's control channel or the worker's own channel only says
"look": the listener calls ``wake`` and ignores the payload, and the control loop
(``run_once``, on its own connection) reads the commands newer than its cursor,
answers those addressed to it one at a time, and writes each reply as a row of
``control_replies`` with a wake-up hint to the asker. The same loop keeps the
worker's revoked ids and paused queues in step with the database. Every
``interval`` seconds it reads all of it again, so a lost (or never sent)
notification delays a command by at most ``interval``, and a forged one costs one
read that finds nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from stem_pg.core.control import SHUTDOWN_MODES, Command, ControlError, Reply, ShutdownMode, request_key
from stem_pg.core.signals import ControlInfo, Signals
from stem_pg.core.tasks import TaskRegistry
from stem_pg.db.managed import AsyncConn
from stem_pg.db.stores.control import CommandRow, ControlStore
from stem_pg.worker.context import Inflight
from stem_pg.worker.revokes import RevokeSet, describe, log_revokes
from stem_pg.worker.state import WorkerState

log = logging.getLogger(__name__)

_LOOK = "look"  # "read the commands newer than the cursor now"
_RESYNC = "resync"  # "and revokes and paused queues too"


class WorkerControl:
    """Answers control commands and applies revokes and pauses for one worker.

    It reads the worker's ``state`` (what it holds and counted), the ``registry``
    (what it can run) and stops the worker through ``request_stop``.
    """

    def __init__(
        self,
        store: ControlStore,
        state: WorkerState,
        registry: TaskRegistry,
        *,
        namespace: str,
        request_stop: Callable[[ShutdownMode], None],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        signals: Signals | None = None,
        limits: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self.store = store
        #: The worker's rate and concurrency limits, as ``inspect`` reports them.
        self.limits = limits
        self.state = state
        self.registry = registry
        self.namespace = namespace
        self.request_stop = request_stop
        self.revokes = RevokeSet()
        self.paused: frozenset[str] = frozenset()
        self.interval = interval
        self.clock = clock
        self.signals = signals or Signals()
        #: The newest command id seen (None until ``start``): later ones are read next.
        self.cursor: int | None = None
        self._inbox: asyncio.Queue[str] = asyncio.Queue()
        self._last_sync = float("-inf")

    # -- intake (called by the listener) -------------------------------------------

    def wake(self) -> None:
        """A NOTIFY came on a control channel: read the command rows soon (its payload is
        never trusted, so it is not even passed on)."""
        self._inbox.put_nowait(_LOOK)

    def request_sync(self) -> None:
        """Re-read commands, revokes and paused queues soon (e.g. after the listener reconnected)."""
        self._inbox.put_nowait(_RESYNC)

    async def start(self, conn: AsyncConn) -> None:
        """Take the newest command id as the cursor (once): commands before this worker
        started are not for it."""
        if self.cursor is None:
            self.cursor = await self.store.command_cursor(conn)

    # -- the control loop ----------------------------------------------------------

    async def run_once(self, conn: AsyncConn) -> None:
        """Answer the commands waiting when woken, or re-read everything when nothing came
        for ``interval`` seconds."""
        wait = self.interval - (self.clock() - self._last_sync)
        if wait <= 0:
            await self.sync(conn)
            await self.poll(conn)
            return
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancel that
            # lands as the inner get completes, and the worker's stop then never ends.
            async with asyncio.timeout(wait):
                first = await self._inbox.get()
        except TimeoutError:
            return
        wanted = {first}
        while not self._inbox.empty():  # a burst of wake-ups costs one read
            wanted.add(self._inbox.get_nowait())
        if _RESYNC in wanted:
            await self.sync(conn)
        await self.poll(conn)

    async def poll(self, conn: AsyncConn) -> int:
        """Answer the commands newer than the cursor that are addressed to this worker;
        returns how many it answered."""
        answered = 0
        while self.cursor is not None:
            rows = await self.store.commands_since(conn, after=self.cursor)
            if not rows:
                break
            for row in rows:
                command = self._command(row)
                if command is not None and command.addressed_to(self.state.id):
                    await self.handle(conn, command)  # a lost connection: handled again later
                    answered += 1
                self.cursor = max(self.cursor, row.id)
        return answered

    def _command(self, row: CommandRow) -> Command | None:
        try:
            return Command(
                row.command,
                id=row.request_id,
                args=row.args if isinstance(row.args, dict) else {},
                targets=tuple(str(t) for t in row.targets),
                reply=self.store.q.channels.reply(request_key(row.request_id)) if row.wants_reply else None,
            )
        except ControlError as exc:
            log.warning("worker %s: ignoring control command %d: %s", self.state.id, row.id, exc)
            return None

    async def sync(self, conn: AsyncConn) -> list[str]:
        """Catch up with revokes (stopping running jobs revoked with terminate) and pauses.

        Returns the ids this worker terminated.
        """
        fresh = self.revokes.apply(await self.store.revokes_since(conn, after=self.revokes.version))
        if fresh:
            log_revokes(self.state.id, fresh)
        self.revokes.drop_expired()
        self.paused = frozenset(p.queue for p in await self.store.paused(conn))
        self._last_sync = self.clock()
        return [row.task_id for row in fresh if row.terminate and self.terminate(row.task_id, describe(row))]

    def terminate(self, task_id: str, reason: str) -> bool:
        """Stop a job this worker holds: async handlers are cancelled now, sync ones stop
        at their next checkpoint, unstarted ones never start. False if not held."""
        entry = self.state.inflight.get(task_id)
        if entry is None or entry.revoked is not None:
            return False
        entry.revoked = reason
        log.warning("worker %s: terminating task %s (%s)", self.state.id, task_id, reason)
        if entry.task is not None and self._is_async(entry):  # running now
            entry.task.cancel()
        return True

    def _is_async(self, entry: Inflight) -> bool:
        definition = self.registry.get(entry.job.task)
        return definition is not None and definition.is_async

    async def handle(self, conn: AsyncConn, command: Command) -> None:
        """Run one command and send its reply (if the sender asked for one)."""
        if self.signals.control_command_received:
            info = ControlInfo(command.command, command.id, self.state.id, dict(command.args))
            await self.signals.control_command_received.asend(info)
        try:
            reply = Reply(command.id, self.state.id, data=await self._dispatch(conn, command))
        except Exception as exc:  # a bad command must not stop the control loop
            log.warning("worker %s: control command %s failed: %s", self.state.id, command.command, exc)
            reply = Reply(command.id, self.state.id, ok=False, error=f"{type(exc).__name__}: {exc}")
        await self.send(conn, command, reply)
        if command.command == "shutdown" and reply.ok:
            self.request_stop(command.args.get("mode", "warm"))

    async def send(self, conn: AsyncConn, command: Command, reply: Reply) -> None:
        """Write the reply row (readable only by roles granted SELECT on ``control_replies``)
        and hint the asker on the channel derived from the command id."""
        if command.reply is None:
            return
        await self.store.store_reply(
            conn,
            request_id=reply.request_id,
            worker_id=reply.worker_id,
            payload={"ok": reply.ok, "data": reply.data, "error": reply.error},
            channel=command.reply,
        )

    async def _dispatch(self, conn: AsyncConn, command: Command) -> dict[str, Any]:
        name = command.command
        if name == "ping":
            return {"pong": True}
        if name == "stats":
            return self.stats()
        if name == "inspect":
            return self.inspect()
        if name == "shutdown":
            mode = command.args.get("mode", "warm")
            if mode not in SHUTDOWN_MODES:
                raise ControlError(f"unknown shutdown mode {mode!r}; use one of {', '.join(SHUTDOWN_MODES)}")
            return {"shutdown": mode}
        terminated = await self.sync(conn)
        if name == "revoke":
            asked = [str(i) for i in command.args.get("ids", [])]
            held = [i for i in asked if i in self.state.inflight]
            return {"terminated": terminated, "held": held}
        queue = str(command.args.get("queue", ""))
        return {
            "queue": queue,
            "paused": sorted(self.paused),
            "consumes": queue in self.state.settings.queues,
        }

    # -- what stats and inspect report -----------------------------------------------

    def stats(self) -> dict[str, Any]:
        state, settings = self.state, self.state.settings
        counts = state.counts
        active = [e for e in state.inflight.values() if e.started]
        return {
            "worker": state.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "namespace": self.namespace,
            "uptime": round(time.monotonic() - state.started_monotonic, 3),
            "concurrency": settings.concurrency,
            "prefetch_multiplier": settings.prefetch_multiplier,
            "prefetch_limit": settings.capacity,
            "inflight": len(state.inflight) + len(state.broadcast_inflight),
            "active": len(active) + len(state.broadcast_inflight),
            "reserved": len(state.inflight) - len(active),
            "processed": sum(counts[k] for k in ("succeeded", "failed", "cancelled")),
            "succeeded": counts["succeeded"],
            "failed": counts["failed"],
            "cancelled": counts["cancelled"],
            "retried": counts["retried"],
            "queues": list(settings.queues),
            "paused": sorted(self.paused & set(settings.queues)),
            "broadcasts": list(settings.broadcasts),
            "last_heartbeat": _iso(state.last_heartbeat_at),
        }

    def inspect(self) -> dict[str, Any]:
        state = self.state
        now = time.monotonic()
        return {
            "worker": state.id,
            "active": [_describe(e, now) for e in state.inflight.values() if e.started],
            "reserved": [_describe(e, None) for e in state.inflight.values() if not e.started],
            "broadcasts": [_describe(e, now) for e in state.broadcast_inflight.values()],
            "registered": [d.name for d in self.registry],
            "revoked": self.revokes.ids(),
            "queues": list(state.settings.queues),
            "paused": sorted(self.paused),
        } | self.limits()

    async def maintain(self, conn: AsyncConn) -> None:
        """Housekeeping of the control tables (every worker may run it)."""
        await self.store.prune_revokes(conn)
        await self.store.prune_replies(conn)
        await self.store.prune_commands(conn)


def _describe(entry: Inflight, now: float | None) -> dict[str, Any]:
    job = entry.job
    info: dict[str, Any] = {"id": job.id, "task": job.task, "queue": job.queue, "attempt": job.attempts}
    if now is not None and entry.started:
        info["runtime"] = round(now - entry.started_at, 3)
        info["started_at"] = _iso(datetime.now(UTC).timestamp() - (now - entry.started_at))
    if entry.progress is not None:
        info["progress"] = json.loads(entry.progress)  # an object in the reply, not JSON text
    if entry.revoked is not None:
        info["revoked"] = entry.revoked
    return info


def _iso(moment: datetime | float | None) -> str | None:
    if moment is None:
        return None
    if isinstance(moment, float):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.isoformat()
