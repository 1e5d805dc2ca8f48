"""Checking a claimed job's signature before it runs (payload signing, stem_pg.core.signing).

Every job and broadcast message must carry a signature that one of the worker's
keys verifies, with one exception: the jobs that resume a workflow run. Those
are written by the database (the ``wf_wake`` trigger) and by workers, which
under Ed25519 cannot sign; their payload is nothing but a run id
(``{"run_id": R}`` with the header ``stem-workflow: R``, plus the trace headers of
``stem_pg.core.trace_hooks.TRACE_HEADERS`` when traced), and the workflow runner acts
on one only while the run names that job id as its next job (the run and its params
were written when a signed producer started it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stem_pg.core.signing import Signing
from stem_pg.core.trace_hooks import TRACE_HEADERS
from stem_pg.core.workflows import WORKFLOW_HEADER
from stem_pg.db.stores.rows import ClaimedJob


class Verifier:
    """``problem(job)``: None when ``job`` may run, else why not."""

    def __init__(self, signing: Signing, workflows: Mapping[str, Any]) -> None:
        self.signing = signing
        self.workflows = workflows

    def problem(self, job: ClaimedJob) -> str | None:
        problem = self.signing.problem(job.id, job.task, job.args, job.headers, job.signature)
        if problem == "unsigned" and self._resumes_workflow(job):
            return None
        return problem

    def _resumes_workflow(self, job: ClaimedJob) -> bool:
        headers = job.headers if isinstance(job.headers, dict) else {}
        run_id = headers.get(WORKFLOW_HEADER)
        return (
            isinstance(run_id, str)
            and job.task in self.workflows
            and headers.keys() - TRACE_HEADERS == {WORKFLOW_HEADER}
            and job.args == {"run_id": run_id}
        )


def verifier(
    signing: Signing | None, workflows: Mapping[str, Any]
) -> Callable[[ClaimedJob], str | None] | None:
    """The executor's check under ``signing``; None (run everything) without it."""
    return None if signing is None else Verifier(signing, workflows).problem
