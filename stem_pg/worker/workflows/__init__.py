"""Durable workflows, the worker side: the job handler that replays a run (``handler``),
one job's guarded hold on its run (``runner``) and the ``WorkflowContext`` its code
sees (``context``). Every write is guarded by the job's lease token."""

from __future__ import annotations

from stem_pg.worker.workflows.context import ChildWorkflowFailed, EventTimeout, WorkflowContext
from stem_pg.worker.workflows.handler import WorkflowTasks, workflow_handler

__all__ = ["ChildWorkflowFailed", "EventTimeout", "WorkflowContext", "WorkflowTasks", "workflow_handler"]
