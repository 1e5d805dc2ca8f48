-- The per-minute rollup of finished jobs the dashboard's chart reads (RollupStore; migration
-- 0019). {ns} is the namespace schema. Minutes are binned from 2000-01-01 00:00 UTC
-- (date_bin), whatever the session's time zone.
--
-- Minutes before result_rollup.rolled_to are rolled up into result_minutes, once each: a
-- pass counts the results finished in [rolled_to, the last complete minute) and moves
-- rolled_to in the same transaction, one worker at a time (rollup_lock). A result's
-- finished_at is its finishing transaction's now(), i.e. when that transaction started, so
-- a result can become visible after a pass already counted its minute; a pass therefore
-- rolls up only minutes that ended at least 10 seconds ago (a finishing transaction is a
-- few milliseconds long). A result committed more than 10 s after its finished_at is left
-- out of the chart: the rollup is for the chart only, results stay the record.

-- name: rollup_lock
-- One worker at a time rolls a namespace's results up (the lock ends with the transaction);
-- the others skip the chore for this pass.
SELECT pg_try_advisory_xact_lock(hashtextextended('stem_pg:rollup:' || %(schema)s, 0));

-- name: rollup_results
-- Count the results finished in [rolled_to, the minute that began 10 s before the last
-- complete one ended), per minute and queue (a range scan of results_finished_idx), add them
-- to result_minutes and move rolled_to to the end of that range. Never more than an hour
-- back (the chart's window): the first pass after the migration, or after the workers were
-- down, starts there. Returns how many (minute, queue) rows and results it added.
WITH bounds AS MATERIALIZED (
    SELECT greatest(w.rolled_to,
                    date_bin('1 minute', now(), timestamptz '2000-01-01 00:00+00') - interval '1 hour') AS since,
           date_bin('1 minute', now() - interval '10 seconds', timestamptz '2000-01-01 00:00+00') AS upto
    FROM {ns}.result_rollup AS w
), counted AS (
    -- the bounds as scalar subqueries (init plans): an index range scan whatever the
    -- planner guesses of result_rollup's size
    SELECT date_bin('1 minute', r.finished_at, timestamptz '2000-01-01 00:00+00') AS minute, r.queue,
           count(*) AS finished, count(*) FILTER (WHERE r.state = 'failed') AS failed,
           count(r.started_at) AS waited,
           coalesce(sum(extract(epoch FROM r.started_at - r.enqueued_at)), 0)::double precision
               AS wait_seconds_sum
    FROM {ns}.results AS r
    WHERE r.finished_at >= (SELECT since FROM bounds) AND r.finished_at < (SELECT upto FROM bounds)
    GROUP BY 1, 2
), added AS (
    INSERT INTO {ns}.result_minutes AS m (minute, queue, finished, failed, waited, wait_seconds_sum)
    SELECT minute, queue, finished, failed, waited, wait_seconds_sum FROM counted
    ON CONFLICT (minute, queue) DO UPDATE
    SET finished = m.finished + excluded.finished, failed = m.failed + excluded.failed,
        waited = m.waited + excluded.waited,
        wait_seconds_sum = m.wait_seconds_sum + excluded.wait_seconds_sum
    RETURNING 1
), moved AS (
    UPDATE {ns}.result_rollup AS w
    SET rolled_to = bounds.upto
    FROM bounds
    WHERE bounds.upto > bounds.since
    RETURNING w.rolled_to
)
SELECT (SELECT count(*) FROM added) AS minutes,
       (SELECT coalesce(sum(finished), 0) FROM counted)::bigint AS results,
       (SELECT rolled_to FROM moved) AS rolled_to;

-- name: rollup_prune
-- Rolled-up minutes older than a day (a range scan of the primary key).
DELETE FROM {ns}.result_minutes WHERE minute < now() - interval '1 day';
