"""``stem doctor``: what slows the namespace's queue, each finding with its fix."""

from __future__ import annotations

from typing import Annotated

import typer

from stem_pg.cli import common

_MARK = {"ok": "ok     ", "warn": "WARN   ", "problem": "PROBLEM"}


def doctor_command(
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
    json: common.JsonOption = False,
    idle_after: Annotated[
        float,
        typer.Option(
            "--idle-after",
            min=0,
            help="Seconds the transaction of a session idle in transaction (or a prepared"
            " transaction) may stay open while it holds the xmin horizon before it is a problem.",
        ),
    ] = 60.0,
    long_query: Annotated[
        float,
        typer.Option(
            "--long-query",
            min=0,
            help="Seconds a statement may run while it holds the xmin horizon before it is a warning.",
        ),
    ] = 300.0,
) -> None:
    """Name what slows a queue: sessions, slots or prepared transactions holding back the xmin
    horizon, dead rows and bloat of the jobs table, stale vacuum and analyze, the NOTIFY queue,
    connection headroom and missing indexes; each with its fix.

    Exits 1 when a finding is a problem; warnings alone exit 0.
    """
    from stem_pg.core.doctor import Thresholds, exit_code
    from stem_pg.schema.doctor import examine

    thresholds = Thresholds(idle_in_transaction=idle_after, long_query=long_query)
    ns = common.namespace(namespace)
    findings = examine(common.database_url(url), ns, thresholds)
    code = exit_code(findings)
    if json:
        common.print_json({"namespace": ns, "ok": code == 0, "findings": [f.as_dict() for f in findings]})
    else:
        for finding in findings:
            typer.echo(f"{_MARK[finding.severity]} {finding.check} {finding.subject}: {finding.detail}")
            if finding.fix and finding.severity != "ok":
                typer.echo(f"        fix: {finding.fix}")
    raise typer.Exit(code)
