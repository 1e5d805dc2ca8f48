"""stem doctor's decisions (stem_pg/core/doctor.py): statistics and thresholds in, findings
with a severity and a fix out; problems exit 1, warnings alone exit 0."""

from __future__ import annotations

from stem_pg.core.doctor import (
    Finding,
    IndexStats,
    JobsTable,
    ServerStats,
    Thresholds,
    exit_code,
    fleet_findings,
    horizon_findings,
    index_findings,
    query_excerpt,
    server_findings,
    table_findings,
)
from stem_pg.core.vacuum import HorizonHolder

TH = Thresholds()
NOW = 1_700_000_000.0


def session(pid: int, state: str, age: float, query: str = "SELECT 1") -> HorizonHolder:
    return HorizonHolder(
        kind="session", xmin=100, xmin_age=5, pid=pid, application_name="report-tool",
        state=state, age=age, user_name="alice", query=query,
    )  # fmt: skip


def table(**changes: object) -> JobsTable:
    values: dict[str, object] = {
        "live": 100_000, "dead": 0, "modified_since_analyze": 0, "last_vacuum": NOW - 10,
        "last_autovacuum": None, "last_analyze": NOW - 10, "last_autoanalyze": None, "now": NOW,
        "bytes": 20 * 1024 * 1024, "row_width": 150,
    }  # fmt: skip
    values.update(changes)
    return JobsTable(**values)  # type: ignore[arg-type]


def by_check(findings: list[Finding], check: str) -> Finding:
    (found,) = [f for f in findings if f.check == check]
    return found


def test_a_session_idle_in_transaction_past_the_threshold_is_a_problem_named_by_pid() -> None:
    findings = horizon_findings([session(4242, "idle in transaction", 90.0)], TH)
    (finding,) = findings
    assert finding.severity == "problem"
    assert finding.subject == "pid 4242"
    assert "'report-tool'" in finding.detail and "'alice'" in finding.detail and "SELECT 1" in finding.detail
    assert "pg_terminate_backend(4242)" in finding.fix
    assert finding.facts["pid"] == 4242 and finding.facts["application_name"] == "report-tool"
    assert finding.facts["user"] == "alice" and finding.facts["state"] == "idle in transaction"
    assert exit_code(findings) == 1


def test_young_holders_are_fine_and_a_long_query_only_warns() -> None:
    young = horizon_findings([session(1, "idle in transaction", 5.0), session(2, "active", 10.0)], TH)
    assert [f.severity for f in young] == ["ok"]
    long = horizon_findings([session(3, "active", 600.0)], TH)
    assert [f.severity for f in long] == ["warn"]
    assert exit_code(long) == 0


def test_a_session_holding_a_snapshot_and_an_xid_is_named_once() -> None:
    twice = [session(7, "idle in transaction", 90.0), session(7, "idle in transaction", 90.0)]
    assert len(horizon_findings(twice, TH)) == 1


def test_slots_and_prepared_transactions() -> None:
    slot = HorizonHolder(kind="slot", xmin=1, xmin_age=9, name="standby", state="inactive")
    prepared = HorizonHolder(kind="prepared", xmin=2, xmin_age=9, name="tx-1", state="prepared", age=7200.0)
    findings = horizon_findings([slot, prepared], TH)
    assert [(f.subject, f.severity) for f in findings] == [
        ("replication slot standby", "problem"),
        ("prepared transaction tx-1", "problem"),
    ]
    assert "pg_drop_replication_slot('standby')" in findings[0].fix
    assert "ROLLBACK PREPARED 'tx-1'" in findings[1].fix
    feedback = HorizonHolder(kind="slot", xmin=1, xmin_age=50, name="replica", state="active")
    assert [f.severity for f in horizon_findings([feedback], TH)] == ["ok"]
    behind = HorizonHolder(kind="slot", xmin=1, xmin_age=2_000_000, name="replica", state="active")
    assert [f.severity for f in horizon_findings([behind], TH)] == ["warn"]


def test_the_query_excerpt_masks_literals_and_stops_at_80_characters() -> None:
    excerpt = query_excerpt("ALTER ROLE app PASSWORD 'hunter2-secret'; -- " + "x" * 200)
    assert "hunter2" not in excerpt
    assert "'***'" in excerpt
    assert len(excerpt) == 80
    assert query_excerpt("SELECT\n  1") == "SELECT 1"
    assert "s3cr3t" not in query_excerpt("DO $body$ BEGIN PERFORM set_token('s3cr3t'); END $body$")
    assert "s3cr3t" not in query_excerpt("SELECT $$s3cr3t")
    assert query_excerpt("SELECT $1, x FROM t") == "SELECT $1, x FROM t"


def test_dead_rows_warn_then_become_a_problem() -> None:
    assert by_check(table_findings(table(dead=5_000), TH), "dead_rows").severity == "ok"
    assert by_check(table_findings(table(dead=30_000), TH), "dead_rows").severity == "warn"
    problem = by_check(table_findings(table(dead=150_000), TH), "dead_rows")
    assert problem.severity == "problem" and "VACUUM" in problem.fix


def test_a_burst_since_the_last_analyze_and_a_stale_vacuum_warn() -> None:
    findings = table_findings(table(modified_since_analyze=80_000, dead=30_000, last_vacuum=NOW - 7200), TH)
    assert by_check(findings, "analyze").severity == "warn"
    assert "ANALYZE" in by_check(findings, "analyze").fix
    assert by_check(findings, "vacuum").severity == "warn"
    assert by_check(table_findings(table(), TH), "analyze").severity == "ok"


def test_a_bloated_table_warns_and_a_small_or_unanalyzed_one_is_not_judged() -> None:
    bloated = table(live=1000, bytes=200 * 1024 * 1024)
    assert by_check(table_findings(bloated, TH), "table_bloat").severity == "warn"
    assert by_check(table_findings(table(live=1000, bytes=1024), TH), "table_bloat").severity == "ok"
    assert by_check(table_findings(table(row_width=None, live=1), TH), "table_bloat").severity == "ok"
    # 100k rows of ~180 bytes at fillfactor 80 need ~23 MB: 20 MB is not bloated
    assert by_check(table_findings(table(), TH), "table_bloat").severity == "ok"


def test_missing_invalid_and_bloated_indexes() -> None:
    indexes = [
        IndexStats("jobs_pkey", "jobs", 8192 * 2, 10.0, valid=True, key_width=36),
        IndexStats("jobs_claim_idx", "jobs", 100 * 1024 * 1024, 50.0, valid=True, key_width=20),
        IndexStats("results_pkey", "results", 8192, 1.0, valid=False, key_width=36),
    ]
    findings = index_findings(indexes, ["jobs_pkey", "jobs_claim_idx", "jobs_lease_idx", "results_pkey"], TH)
    assert [(f.check, f.subject, f.severity) for f in findings] == [
        ("index_missing", "jobs_lease_idx", "problem"),
        ("index_bloat", "jobs_claim_idx", "warn"),
        ("index_invalid", "results_pkey", "problem"),
    ]
    assert "REINDEX INDEX CONCURRENTLY jobs_claim_idx" in findings[1].fix
    assert [f.severity for f in index_findings(indexes[:2], ["jobs_pkey"], Thresholds(bloat_warn=1.0))] == [
        "ok"
    ]


def test_notify_queue_and_connection_headroom() -> None:
    fine = server_findings(ServerStats(notify_usage=0.0, connections=10, max_connections=97), TH)
    assert [f.severity for f in fine] == ["ok", "ok"]
    full = server_findings(ServerStats(notify_usage=0.95, connections=90, max_connections=97), TH)
    assert [f.severity for f in full] == ["problem", "warn"]
    assert exit_code(full) == 1
    assert exit_code(fine) == 0


def test_a_fleet_whose_connections_approach_the_slots_warns() -> None:
    server = ServerStats(notify_usage=0.0, connections=10, max_connections=97)
    (few,) = fleet_findings(2, 12, server, TH)
    assert (few.check, few.subject, few.severity) == ("worker_connections", "fleet", "ok")
    assert (
        few.detail
        == "2 running worker processes may open 12 connections (6 each) of the 97 the server allows (12%)"
    )
    (mixed,) = fleet_findings(3, 10, server, TH)  # two minimal workers and a per-loop one
    assert (
        mixed.detail == "3 running worker processes may open 10 connections of the 97 the server allows (10%)"
    )
    (near,) = fleet_findings(42, 84, server, TH)  # 84 of 97
    assert near.severity == "warn" and "raise max_connections" in near.fix
    assert near.facts == {"worker_processes": 42, "connections": 84}
    (over,) = fleet_findings(16, 96, server, TH)  # 96 of 97
    assert over.severity == "problem"
    assert exit_code([near]) == 0 and exit_code([over]) == 1
