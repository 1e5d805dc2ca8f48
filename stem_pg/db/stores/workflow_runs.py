"""The workflow run store: runs, their checkpoints and event waiters (``sql/workflows.sql``).

``WorkflowRunStore`` serves the client and the CLI on synchronous connections;
``AsyncWorkflowRunStore`` serves the worker side (the job that replays a run) and
the async waiters. The caller owns the connection and its transaction.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow, class_row, scalar_row

from stem_pg.db.queries import Queries
from stem_pg.db.stores.workflow_rows import (
    CancelledRun,
    Checkpoint,
    NewRun,
    Rewound,
    RunLease,
    RunOutcome,
    RunRecord,
    RunView,
    StepView,
    Waiter,
    WaiterView,
)

Conn = psycopg.Connection[TupleRow]
AsyncConn = psycopg.AsyncConnection[TupleRow]


def _lease(lease: RunLease) -> dict[str, Any]:
    return {"run_id": lease.run_id, "job_id": lease.job_id, "token": lease.token}


class WorkflowRunStore:
    """Workflow queries of one namespace on a synchronous connection the caller owns."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def create_run(self, conn: Conn, *, run: NewRun) -> bool:
        """Record a new run; False if a run with its id exists (it is left alone)."""
        return conn.execute(self.q["wf_run_create"], asdict(run)).fetchone() is not None

    def load_run(self, conn: Conn, *, run_id: str) -> RunRecord | None:
        with conn.cursor(row_factory=class_row(RunRecord)) as cur:
            cur.execute(self.q["wf_run_load"], {"run_id": run_id})
            return cur.fetchone()

    def outcome(self, conn: Conn, *, run_id: str) -> RunOutcome | None:
        """The run's status, result and error; None if there is no such run."""
        with conn.cursor(row_factory=class_row(RunOutcome)) as cur:
            cur.execute(self.q["wf_child_get"], {"run_id": run_id})
            return cur.fetchone()

    def emit(self, conn: Conn, *, topic: str, payload: str) -> list[str]:
        """Record ``payload`` (JSON text) for every run waiting on ``topic``; the runs it reached."""
        with conn.cursor(row_factory=scalar_row) as cur:
            cur.execute(self.q["wf_emit"], {"topic": topic, "payload": payload})
            run_ids: list[str] | None = cur.fetchone()
        return run_ids or []

    def wake(self, conn: Conn, *, run_ids: list[str]) -> int:
        """Resume suspended runs now; how many woke."""
        with conn.cursor(row_factory=scalar_row) as cur:
            cur.execute(self.q["wf_wake"], {"ns": self.q.namespace, "run_ids": run_ids})
            woken: int | None = cur.fetchone()
        return woken or 0

    def cancel(self, conn: Conn, *, run_id: str, reason: str) -> list[CancelledRun]:
        """Cancel a run and its unfinished descendants; those that were cancelled."""
        with conn.cursor(row_factory=class_row(CancelledRun)) as cur:
            cur.execute(self.q["wf_cancel"], _cancel_params(self.q, run_id, reason))
            return cur.fetchall()

    def rewind(self, conn: Conn, *, run_id: str, seq: int, next_job_id: str) -> Rewound:
        """Drop checkpoint ``seq`` and the later ones, and give the run a new job."""
        with conn.cursor(row_factory=class_row(Rewound)) as cur:
            cur.execute(self.q["wf_rewind"], {"run_id": run_id, "seq": seq, "next_job_id": next_job_id})
            return cur.fetchone() or Rewound(0, 0)

    def show_run(self, conn: Conn, *, run_id: str) -> RunView | None:
        with conn.cursor(row_factory=class_row(RunView)) as cur:
            cur.execute(self.q["wf_run_show"], {"run_id": run_id})
            return cur.fetchone()

    def list_runs(self, conn: Conn, *, status: str | None, workflow: str | None, limit: int) -> list[RunView]:
        """Runs, newest first, optionally of one status or workflow."""
        with conn.cursor(row_factory=class_row(RunView)) as cur:
            cur.execute(self.q["wf_run_list"], {"status": status, "workflow": workflow, "limit": limit})
            return cur.fetchall()

    def list_steps(self, conn: Conn, *, run_id: str) -> list[StepView]:
        """A run's checkpoints, in the order they were made."""
        with conn.cursor(row_factory=class_row(StepView)) as cur:
            cur.execute(self.q["wf_step_list"], {"run_id": run_id})
            return cur.fetchall()

    def list_waiters(self, conn: Conn, *, topic: str | None) -> list[WaiterView]:
        with conn.cursor(row_factory=class_row(WaiterView)) as cur:
            cur.execute(self.q["wf_waiter_list"], {"topic": topic})
            return cur.fetchall()


class AsyncWorkflowRunStore:
    """The queries of the job that replays a run (and of async waiters), on an
    asynchronous connection; the ``lease`` of each write guards it."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    async def create_run(self, conn: AsyncConn, *, run: NewRun) -> bool:
        cur = await conn.execute(self.q["wf_run_create"], asdict(run))
        return await cur.fetchone() is not None

    async def load_run(self, conn: AsyncConn, *, run_id: str) -> RunRecord | None:
        async with conn.cursor(row_factory=class_row(RunRecord)) as cur:
            await cur.execute(self.q["wf_run_load"], {"run_id": run_id})
            return await cur.fetchone()

    async def load_steps(self, conn: AsyncConn, *, run_id: str) -> list[Checkpoint]:
        """The run's ledger, in the order its checkpoints were made."""
        async with conn.cursor(row_factory=class_row(Checkpoint)) as cur:
            await cur.execute(self.q["wf_steps_load"], {"run_id": run_id})
            return await cur.fetchall()

    async def begin(self, conn: AsyncConn, *, lease: RunLease) -> bool:
        """The leased job starts executing the run; False if it is not the run's job any more."""
        cur = await conn.execute(self.q["wf_run_begin"], _lease(lease))
        return await cur.fetchone() is not None

    async def record_step(
        self, conn: AsyncConn, *, lease: RunLease, step: str, kind: str, output: str | None, error: str | None
    ) -> bool:
        """Write a checkpoint (``output`` is JSON text); False if one exists or the lease is gone."""
        params = {**_lease(lease), "step": step, "kind": kind, "output": output, "error": error}
        cur = await conn.execute(self.q["wf_step_record"], params)
        return await cur.fetchone() is not None

    async def get_step(self, conn: AsyncConn, *, run_id: str, step: str) -> Checkpoint | None:
        async with conn.cursor(row_factory=class_row(Checkpoint)) as cur:
            await cur.execute(self.q["wf_step_get"], {"run_id": run_id, "step": step})
            return await cur.fetchone()

    async def lock_run(self, conn: AsyncConn, *, lease: RunLease) -> str | None:
        """Lock the run row; its status, or None if the job no longer holds the run."""
        async with conn.cursor(row_factory=scalar_row) as cur:
            await cur.execute(self.q["wf_run_lock"], _lease(lease))
            status: str | None = await cur.fetchone()
        return status

    async def suspend(
        self,
        conn: AsyncConn,
        *,
        lease: RunLease,
        next_job_id: str,
        waiting_for: str,
        wake_at: datetime | None,
        resume_at: datetime | None,
        headers: str = "{}",
    ) -> bool:
        """Hand the run to job ``next_job_id`` (inserted due at ``resume_at`` unless None, with
        ``headers``, JSON, besides its run's); False if the run was not running under this lease."""
        params = {
            **_lease(lease),
            "next_job_id": next_job_id,
            "waiting_for": waiting_for,
            "wake_at": wake_at,
            "resume_at": resume_at,
            "headers": headers,
        }
        async with conn.cursor(row_factory=scalar_row) as cur:
            await cur.execute(self.q["wf_suspend"], params)
            suspended: int | None = await cur.fetchone()
        return bool(suspended)

    async def get_waiter(self, conn: AsyncConn, *, run_id: str, step: str) -> Waiter | None:
        async with conn.cursor(row_factory=class_row(Waiter)) as cur:
            await cur.execute(self.q["wf_waiter_get"], {"run_id": run_id, "step": step})
            return await cur.fetchone()

    async def add_waiter(
        self, conn: AsyncConn, *, run_id: str, step: str, topic: str, deadline_at: datetime | None
    ) -> None:
        params = {"run_id": run_id, "step": step, "topic": topic, "deadline_at": deadline_at}
        await conn.execute(self.q["wf_waiter_add"], params)

    async def take_waiter(self, conn: AsyncConn, *, run_id: str, step: str) -> bool:
        """Take back a waiter whose deadline passed; False if an emit took it first."""
        cur = await conn.execute(self.q["wf_waiter_take"], {"run_id": run_id, "step": step})
        return await cur.fetchone() is not None

    async def outcome(self, conn: AsyncConn, *, run_id: str) -> RunOutcome | None:
        async with conn.cursor(row_factory=class_row(RunOutcome)) as cur:
            await cur.execute(self.q["wf_child_get"], {"run_id": run_id})
            return await cur.fetchone()

    async def cancel(self, conn: AsyncConn, *, run_id: str, reason: str) -> list[CancelledRun]:
        async with conn.cursor(row_factory=class_row(CancelledRun)) as cur:
            await cur.execute(self.q["wf_cancel"], _cancel_params(self.q, run_id, reason))
            return await cur.fetchall()

    async def wake(self, conn: AsyncConn, *, run_ids: list[str]) -> int:
        async with conn.cursor(row_factory=scalar_row) as cur:
            await cur.execute(self.q["wf_wake"], {"ns": self.q.namespace, "run_ids": run_ids})
            woken: int | None = await cur.fetchone()
        return woken or 0


def _cancel_params(queries: Queries, run_id: str, reason: str) -> dict[str, Any]:
    return {"run_id": run_id, "reason": reason, "done_channel": queries.channels.done}
