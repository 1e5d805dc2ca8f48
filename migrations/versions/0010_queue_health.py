"""The ``queue_health`` view: each queue's depth, oldest ready age, latencies and failure rate.

Revision ID: 0010
Revises: 0009

One row per queue that has a live job (``jobs``) or a job finished in the last 15
minutes (``results``). Columns (durations in seconds, double precision):

* ``ready``, ``scheduled``, ``running``: live jobs, as ``queue_depths`` counts them.
* ``oldest_ready_age``: how long the longest-waiting ready job has been runnable
  (``now() - not_before``: its enqueue, or the end of its countdown or retry delay);
  NULL when no job is ready.
* ``wait_p50_1m`` ... ``wait_p95_15m``: percentiles of enqueued -> started (the last
  attempt's start) of the jobs finished in the last 1, 5 and 15 minutes.
* ``run_p50_1m`` ... ``run_p95_15m``: the same for started -> finished.
* ``finished_1m``, ``finished_5m``, ``finished_15m``: throughput, jobs finished (any
  terminal state) in each window.
* ``failed_15m`` and ``failure_rate_15m``: jobs finished as 'failed' in the last 15
  minutes, and their share of ``finished_15m`` (0..1; NULL when none finished).

Cost: one pass over ``jobs`` (live jobs only: a finished job moves to ``results``), as
``queue_depths`` does, and a range scan of ``results_finished_idx`` over the last 15
minutes; never a scan of the whole result history. A probe every few seconds is cheap
while the backlog is; with millions of waiting jobs each read costs what counting them does.
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _percentiles(column: str) -> str:
    return ",\n".join(
        f"    percentile_cont({fraction}) WITHIN GROUP (ORDER BY {column}) FILTER "
        f"(WHERE finished_at > now() - interval '{minutes} minutes') AS {column}_p{label}_{minutes}m"
        for minutes in (1, 5, 15)
        for fraction, label in (("0.5", "50"), ("0.95", "95"))
    )


UPGRADE = f"""
CREATE VIEW {{ns}}.queue_health AS
WITH live AS (
    SELECT queue,
           count(*) FILTER (WHERE state <> 'running' AND not_before <= now()) AS ready,
           count(*) FILTER (WHERE state <> 'running' AND not_before > now()) AS scheduled,
           count(*) FILTER (WHERE state = 'running') AS running,
           min(not_before) FILTER (WHERE state <> 'running' AND not_before <= now()) AS oldest_ready
    FROM {{ns}}.jobs
    GROUP BY queue
), done AS (
    SELECT queue, state, finished_at,
           extract(epoch FROM started_at - enqueued_at)::double precision AS wait,
           extract(epoch FROM finished_at - started_at)::double precision AS run
    FROM {{ns}}.results
    WHERE finished_at > now() - interval '15 minutes'
), recent AS (
    SELECT queue,
{_percentiles("wait")},
{_percentiles("run")},
    count(*) FILTER (WHERE finished_at > now() - interval '1 minutes') AS finished_1m,
    count(*) FILTER (WHERE finished_at > now() - interval '5 minutes') AS finished_5m,
    count(*) AS finished_15m,
    count(*) FILTER (WHERE state = 'failed') AS failed_15m
    FROM done
    GROUP BY queue
)
SELECT queue,
       coalesce(live.ready, 0) AS ready,
       coalesce(live.scheduled, 0) AS scheduled,
       coalesce(live.running, 0) AS running,
       extract(epoch FROM now() - live.oldest_ready)::double precision AS oldest_ready_age,
       recent.wait_p50_1m, recent.wait_p95_1m, recent.wait_p50_5m, recent.wait_p95_5m,
       recent.wait_p50_15m, recent.wait_p95_15m,
       recent.run_p50_1m, recent.run_p95_1m, recent.run_p50_5m, recent.run_p95_5m,
       recent.run_p50_15m, recent.run_p95_15m,
       coalesce(recent.finished_1m, 0) AS finished_1m,
       coalesce(recent.finished_5m, 0) AS finished_5m,
       coalesce(recent.finished_15m, 0) AS finished_15m,
       coalesce(recent.failed_15m, 0) AS failed_15m,
       recent.failed_15m::double precision / nullif(recent.finished_15m, 0) AS failure_rate_15m
FROM live FULL JOIN recent USING (queue);
"""

DOWNGRADE = """
DROP VIEW {ns}.queue_health;
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
