"""Canvas (chains, groups, chords) and durable workflow runs.

Revision ID: 0004
Revises: 0003

Both advance inside the transaction that finishes a job: an AFTER DELETE
trigger on ``jobs`` (only for rows whose headers carry ``stem-canvas`` or
``stem-workflow``) records the outcome, enqueues the next chain link or the
chord callback, and settles workflow runs. Whatever finishes a job (a worker's
flush, the rescuer, expiry, a revoke) therefore moves the canvas or run on
exactly once, atomically with the job's own result row.
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = """
-- One row per chain, group or chord. `pending` counts members (chain links,
-- group members, chord header members) that have not finished yet.
CREATE TABLE {ns}.canvases (
    id text PRIMARY KEY,
    kind text NOT NULL CONSTRAINT canvases_kind_check CHECK (kind IN ('chain', 'group', 'chord')),
    size integer NOT NULL,
    pending integer NOT NULL,
    failed integer NOT NULL DEFAULT 0,
    state text NOT NULL DEFAULT 'running'
        CONSTRAINT canvases_state_check CHECK (state IN ('running', 'succeeded', 'failed')),
    error text,
    result_ttl double precision NOT NULL DEFAULT 86400,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

CREATE INDEX canvases_created_idx ON {ns}.canvases (created_at);

-- The members in input order; a chord's callback is the member at position = size.
-- `job` is the planned job (queue, priority, args, headers, ...) of members that
-- are enqueued later: chain links after the first and the chord callback.
CREATE TABLE {ns}.canvas_members (
    canvas_id text NOT NULL REFERENCES {ns}.canvases (id) ON DELETE CASCADE,
    position integer NOT NULL,
    task_id text NOT NULL,
    task text NOT NULL,
    job jsonb,
    result_arg text,
    state text NOT NULL DEFAULT 'pending'
        CONSTRAINT canvas_members_state_check
        CHECK (state IN ('pending', 'succeeded', 'failed', 'cancelled')),
    result jsonb,
    error text,
    enqueued_at timestamptz,
    finished_at timestamptz,
    PRIMARY KEY (canvas_id, position)
);

CREATE UNIQUE INDEX canvas_members_task_id_idx ON {ns}.canvas_members (task_id);

-- Durable workflow runs. `job_id` is the job that runs the run now or will
-- resume it; every suspension moves it on to a fresh job id.
CREATE TABLE {ns}.wf_runs (
    id text PRIMARY KEY,
    workflow text NOT NULL,
    params jsonb NOT NULL DEFAULT '{{}}',
    status text NOT NULL DEFAULT 'running'
        CONSTRAINT wf_runs_status_check
        CHECK (status IN ('running', 'suspended', 'completed', 'failed', 'cancelled')),
    queue text NOT NULL,
    priority smallint NOT NULL DEFAULT 0,
    max_retries integer NOT NULL DEFAULT 3,
    job_id text NOT NULL,
    resumes integer NOT NULL DEFAULT 0,
    result jsonb,
    error text,
    parent_run_id text REFERENCES {ns}.wf_runs (id) ON DELETE SET NULL,
    parent_step text,
    waiting_for text,
    wake_at timestamptz,
    suspended_at timestamptz,
    deadline_at timestamptz,
    max_suspended double precision,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

CREATE INDEX wf_runs_status_idx ON {ns}.wf_runs (status, created_at);
CREATE INDEX wf_runs_parent_idx ON {ns}.wf_runs (parent_run_id) WHERE parent_run_id IS NOT NULL;

-- The checkpoint ledger: one row per completed step, sleep, event or child.
-- A resumed run replays its code and takes these outputs instead of running again.
CREATE TABLE {ns}.wf_steps (
    run_id text NOT NULL REFERENCES {ns}.wf_runs (id) ON DELETE CASCADE,
    step text NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    kind text NOT NULL CONSTRAINT wf_steps_kind_check CHECK (kind IN ('step', 'sleep', 'event', 'child')),
    output jsonb,
    error text,
    job_id text,
    attempt integer,
    finished_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, step)
);

-- Runs suspended in await_event: an emit on the topic delivers to each of them.
CREATE TABLE {ns}.wf_waiters (
    run_id text NOT NULL REFERENCES {ns}.wf_runs (id) ON DELETE CASCADE,
    step text NOT NULL,
    topic text NOT NULL,
    deadline_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, step)
);

CREATE INDEX wf_waiters_topic_idx ON {ns}.wf_waiters (topic);

CREATE VIEW {ns}.workflow_runs AS
SELECT r.id, r.workflow, r.status, r.params, r.result, r.error, r.parent_run_id, r.parent_step,
       r.waiting_for, r.wake_at, r.job_id, r.resumes,
       (SELECT count(*) FROM {ns}.wf_steps AS s WHERE s.run_id = r.id) AS steps_done,
       r.created_at, r.updated_at, r.finished_at
FROM {ns}.wf_runs AS r;

CREATE VIEW {ns}.workflow_steps AS
SELECT run_id, step, kind, seq, output, error, job_id, attempt, finished_at
FROM {ns}.wf_steps;

-- Enqueue a planned canvas member (a chain link or the chord callback), handing it
-- `value` (the previous result, or the list of header results) under `result_arg`.
CREATE FUNCTION {ns}.canvas_enqueue(canvas text, member_position integer, value jsonb)
RETURNS void LANGUAGE sql AS $$
    WITH member AS (
        UPDATE {ns}.canvas_members
        SET enqueued_at = now()
        WHERE canvas_id = canvas AND position = member_position AND enqueued_at IS NULL
        RETURNING task_id, task, job, result_arg
    )
    INSERT INTO {ns}.jobs (id, task, queue, priority, args, headers, max_retries, not_before,
                           expires_at, visibility_timeout, acks_late)
    SELECT task_id, task, job ->> 'queue', (job ->> 'priority')::smallint,
           CASE WHEN result_arg IS NULL THEN job -> 'args'
                ELSE (job -> 'args') || jsonb_build_object(result_arg, value) END,
           job -> 'headers', (job ->> 'max_retries')::integer,
           coalesce((job ->> 'eta')::timestamptz,
                    now() + make_interval(secs => coalesce((job ->> 'countdown')::float8, 0))),
           coalesce((job ->> 'expires_at')::timestamptz,
                    now() + make_interval(secs => (job ->> 'expires_in')::float8)),
           (job ->> 'visibility_timeout')::integer, coalesce((job ->> 'acks_late')::boolean, true)
    FROM member
    ON CONFLICT (id) DO NOTHING;
$$;

-- Fail a canvas: members never enqueued are cancelled with `reason` (their result
-- rows say so, and their waiters are told).
CREATE FUNCTION {ns}.canvas_stop(ns text, canvas text, reason text)
RETURNS void LANGUAGE sql AS $$
    UPDATE {ns}.canvases SET state = 'failed', error = reason, finished_at = now()
    WHERE id = canvas AND state = 'running';
    WITH stopped AS (
        UPDATE {ns}.canvas_members
        SET state = 'cancelled', error = reason, finished_at = now()
        WHERE canvas_id = canvas AND state = 'pending' AND enqueued_at IS NULL
        RETURNING task_id, task, job
    ),
    stored AS (
        INSERT INTO {ns}.results (id, task, queue, priority, state, error, attempts, enqueued_at,
                                  finished_at, expires_at)
        SELECT s.task_id, s.task, s.job ->> 'queue', (s.job ->> 'priority')::smallint, 'cancelled',
               reason, 0, now(), now(), now() + make_interval(secs => c.result_ttl)
        FROM stopped AS s, {ns}.canvases AS c
        WHERE c.id = canvas
        ON CONFLICT (id) DO NOTHING
        RETURNING id
    )
    SELECT pg_notify(ns || ':done', string_agg(id, ',')) FROM stored HAVING count(*) > 0;
$$;

-- How a job that just left `jobs` ended, from its result row (a job without one,
-- which no path writes today, counts as failed rather than silently succeeded).
CREATE FUNCTION {ns}.job_outcome(finished_id text)
RETURNS TABLE (state text, result jsonb, error text) LANGUAGE sql AS $$
    SELECT coalesce(r.state, 'failed'), r.result,
           CASE WHEN r.id IS NULL THEN 'finished without a result' ELSE r.error END
    FROM (SELECT finished_id AS id) AS wanted
    LEFT JOIN {ns}.results AS r ON r.id = wanted.id;
$$;

-- A canvas member's job finished (its result row is already written).
CREATE FUNCTION {ns}.canvas_member_done(ns text, finished_id text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    outcome record;
    member record;
    canvas record;
    failure record;
BEGIN
    SELECT * INTO outcome FROM {ns}.job_outcome(finished_id);
    UPDATE {ns}.canvas_members AS m
    SET state = outcome.state, result = outcome.result, error = outcome.error, finished_at = now()
    WHERE m.task_id = finished_id AND m.state = 'pending'
    RETURNING m.canvas_id, m.position, m.task INTO member;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- The row lock taken here serialises racing members: exactly one sees pending = 0.
    UPDATE {ns}.canvases AS c
    SET pending = c.pending - CASE WHEN member.position < c.size THEN 1 ELSE 0 END,
        failed = c.failed + CASE WHEN outcome.state <> 'succeeded' THEN 1 ELSE 0 END
    WHERE c.id = member.canvas_id
    RETURNING c.* INTO canvas;

    IF canvas.kind = 'chain' THEN
        IF outcome.state <> 'succeeded' THEN
            PERFORM {ns}.canvas_stop(ns, canvas.id,
                'chain stopped: link ' || member.position || ' (' || member.task || ') '
                || outcome.state || ': ' || coalesce(outcome.error, 'no error recorded'));
        ELSIF canvas.pending > 0 THEN
            PERFORM {ns}.canvas_enqueue(canvas.id, member.position + 1, outcome.result);
        ELSE
            UPDATE {ns}.canvases SET state = 'succeeded', finished_at = now() WHERE id = canvas.id;
        END IF;
    ELSIF member.position = canvas.size THEN
        UPDATE {ns}.canvases
        SET state = CASE WHEN outcome.state = 'succeeded' THEN 'succeeded' ELSE 'failed' END,
            error = CASE WHEN outcome.state <> 'succeeded'
                         THEN 'callback (' || member.task || ') ' || outcome.state || ': '
                              || coalesce(outcome.error, 'no error recorded') END,
            finished_at = now()
        WHERE id = canvas.id;
    ELSIF canvas.pending = 0 THEN
        IF canvas.failed > 0 THEN
            SELECT m.position, m.task, m.state, m.error INTO failure
            FROM {ns}.canvas_members AS m
            WHERE m.canvas_id = canvas.id AND m.position < canvas.size AND m.state <> 'succeeded'
            ORDER BY m.position
            LIMIT 1;
            PERFORM {ns}.canvas_stop(ns, canvas.id,
                canvas.kind || ' member ' || failure.position || ' (' || failure.task || ') '
                || failure.state || ': ' || coalesce(failure.error, 'no error recorded'));
        ELSIF canvas.kind = 'chord' THEN
            PERFORM {ns}.canvas_enqueue(canvas.id, canvas.size,
                (SELECT coalesce(jsonb_agg(m.result ORDER BY m.position), '[]'::jsonb)
                 FROM {ns}.canvas_members AS m
                 WHERE m.canvas_id = canvas.id AND m.position < canvas.size));
        ELSE
            UPDATE {ns}.canvases SET state = 'succeeded', finished_at = now() WHERE id = canvas.id;
        END IF;
    END IF;
END;
$$;

-- Resume suspended runs now: their next job is inserted, or brought forward if it
-- waits for a later time. The row lock on the run orders this after a suspension
-- that is being committed, so no wake-up is lost. Returns how many runs woke.
CREATE FUNCTION {ns}.wf_wake(ns text, run_ids text[])
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    woken integer := 0;
    queue_name text;
BEGIN
    FOR queue_name IN
        WITH runs AS (
            UPDATE {ns}.wf_runs AS r
            SET updated_at = now()
            WHERE r.id = ANY(run_ids) AND r.status = 'suspended'
            RETURNING r.*
        ),
        resumed AS (
            INSERT INTO {ns}.jobs AS j (id, task, queue, priority, args, headers, max_retries)
            SELECT r.job_id, r.workflow, r.queue, r.priority, jsonb_build_object('run_id', r.id),
                   jsonb_build_object('stem-workflow', r.id), r.max_retries
            FROM runs AS r
            ON CONFLICT (id) DO UPDATE SET not_before = now()
            WHERE j.state IN ('queued', 'retried') AND j.not_before > now()
            RETURNING j.queue
        )
        SELECT queue FROM resumed
    LOOP
        woken := woken + 1;
        PERFORM pg_notify(ns || ':jobs', queue_name);
    END LOOP;
    RETURN woken;
END;
$$;

-- A run's job finished: if it is the run's current job, the run ends with it
-- (succeeded: completed with its return value; failed; cancelled), waiters are
-- told and a parent run waiting for it wakes.
CREATE FUNCTION {ns}.wf_job_done(ns text, run text, finished_id text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    outcome record;
    ended record;
BEGIN
    SELECT * INTO outcome FROM {ns}.job_outcome(finished_id);
    UPDATE {ns}.wf_runs AS r
    SET status = CASE outcome.state WHEN 'succeeded' THEN 'completed'
                                    WHEN 'failed' THEN 'failed' ELSE 'cancelled' END,
        result = CASE WHEN outcome.state = 'succeeded' THEN outcome.result END,
        error = CASE WHEN outcome.state <> 'succeeded' THEN outcome.error END,
        waiting_for = NULL, wake_at = NULL, finished_at = now(), updated_at = now()
    WHERE r.id = run AND r.job_id = finished_id AND r.status IN ('running', 'suspended')
    RETURNING r.id, r.parent_run_id INTO ended;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    DELETE FROM {ns}.wf_waiters WHERE run_id = ended.id;
    PERFORM pg_notify(ns || ':done', ended.id);
    IF ended.parent_run_id IS NOT NULL THEN
        PERFORM {ns}.wf_wake(ns, ARRAY[ended.parent_run_id]);
    END IF;
END;
$$;

CREATE FUNCTION {ns}.job_done() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.headers ? 'stem-canvas' THEN
        PERFORM {ns}.canvas_member_done(TG_TABLE_SCHEMA, OLD.id);
    END IF;
    IF OLD.headers ? 'stem-workflow' THEN
        PERFORM {ns}.wf_job_done(TG_TABLE_SCHEMA, OLD.headers ->> 'stem-workflow', OLD.id);
    END IF;
    RETURN NULL;
END;
$$;

-- Row-level, but only for canvas and workflow jobs: every other job pays one
-- jsonb key test when it leaves the table.
CREATE TRIGGER jobs_done AFTER DELETE ON {ns}.jobs
    FOR EACH ROW WHEN (OLD.headers ?| ARRAY['stem-canvas', 'stem-workflow'])
    EXECUTE FUNCTION {ns}.job_done();
"""

DOWNGRADE = """
DROP TRIGGER jobs_done ON {ns}.jobs;
DROP FUNCTION {ns}.job_done();
DROP FUNCTION {ns}.wf_job_done(text, text, text);
DROP FUNCTION {ns}.wf_wake(text, text[]);
DROP FUNCTION {ns}.canvas_member_done(text, text);
DROP FUNCTION {ns}.canvas_stop(text, text, text);
DROP FUNCTION {ns}.canvas_enqueue(text, integer, jsonb);
DROP FUNCTION {ns}.job_outcome(text);
DROP VIEW {ns}.workflow_steps;
DROP VIEW {ns}.workflow_runs;
DROP TABLE {ns}.wf_waiters;
DROP TABLE {ns}.wf_steps;
DROP TABLE {ns}.wf_runs;
DROP TABLE {ns}.canvas_members;
DROP TABLE {ns}.canvases;
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
