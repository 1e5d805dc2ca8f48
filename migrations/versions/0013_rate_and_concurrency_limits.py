"""Rate and concurrency limits: the ``limiters`` table, the limited claim, ``limiter_state``.

Revision ID: 0013
Revises: 0012

* ``limiters``: one row per limit a worker declared (``key`` '') and one per group of a
  keyed limit (``key`` the group's value, made from the limit's row on first use). A rate
  row is a token bucket (``tokens`` at ``refilled_at``, ``per_second``, ``burst``); a
  concurrency row is what concurrent claims of that limit lock, one at a time.
* ``jobs.limit_key``: set by the limited claim on the jobs it starts (``task:<name>/<key>``
  under a concurrency limit, '' otherwise); the jobs running under a concurrency limit are
  counted by it, so a job that finishes, is retried, given back or rescued after its
  lease frees its slot by leaving 'running'. NULL for jobs the plain claim starts: the two
  partial indexes hold no row of theirs.
* ``claim_limited(...)``: the claim of a queue with limits (stem_pg.worker.limited), which
  skips the jobs over a limit (they stay queued) and takes keys in turn (round robin).
* ``limiter_state``: each limiter row with its tokens now, its running and ready jobs.
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE {ns}.jobs ADD COLUMN limit_key text;

CREATE INDEX jobs_limit_running_idx ON {ns}.jobs (limit_key)
    WHERE state = 'running' AND limit_key IS NOT NULL;

CREATE INDEX jobs_limit_queue_running_idx ON {ns}.jobs (queue)
    WHERE state = 'running' AND limit_key IS NOT NULL;

CREATE TABLE {ns}.limiters (
    kind text NOT NULL CHECK (kind IN ('rate', 'concurrency')),
    scope text NOT NULL,
    key text NOT NULL DEFAULT '',
    per_second double precision,
    burst double precision,
    concurrency integer,
    key_field text,
    fail_open boolean NOT NULL DEFAULT true,
    tokens double precision,
    refilled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, scope, key)
) WITH (fillfactor = 50);

CREATE FUNCTION {ns}.limiter_lock(p_kind text, p_scope text, p_key text) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    -- 1: locked by this transaction (until it ends); 0: another claim holds it; NULL: no row.
    -- A group's row is made from its limit's row on first use.
    IF p_key <> '' THEN
        INSERT INTO {ns}.limiters (kind, scope, key, per_second, burst, concurrency, key_field,
                                   fail_open, tokens)
        SELECT kind, scope, p_key, per_second, burst, concurrency, key_field, fail_open, burst
        FROM {ns}.limiters
        WHERE kind = p_kind AND scope = p_scope AND key = ''
        ON CONFLICT DO NOTHING;
    END IF;
    PERFORM 1 FROM {ns}.limiters
    WHERE kind = p_kind AND scope = p_scope AND key = p_key
    FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
        RETURN 1;
    END IF;
    PERFORM 1 FROM {ns}.limiters WHERE kind = p_kind AND scope = p_scope AND key = p_key;
    RETURN CASE WHEN FOUND THEN 0 END;
END
$$;

CREATE FUNCTION {ns}.limiter_take(p_scope text, p_key text, p_take boolean)
RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
    v_tokens double precision;
    v_rate double precision;
BEGIN
    -- A locked rate bucket, refilled to now: 0 when it holds a token (taken with p_take),
    -- else the seconds until it holds one.
    UPDATE {ns}.limiters
    SET tokens = least(burst, coalesce(tokens, burst) + per_second
                 * greatest(0, extract(epoch FROM clock_timestamp() - refilled_at))),
        refilled_at = greatest(refilled_at, clock_timestamp())
    WHERE kind = 'rate' AND scope = p_scope AND key = p_key
    RETURNING tokens, per_second INTO v_tokens, v_rate;
    IF v_tokens < 1 THEN
        RETURN (1 - v_tokens) / v_rate;
    END IF;
    IF p_take THEN
        UPDATE {ns}.limiters SET tokens = tokens - 1
        WHERE kind = 'rate' AND scope = p_scope AND key = p_key;
    END IF;
    RETURN 0;
END
$$;

CREATE FUNCTION {ns}.claim_limited(p_queue text, p_limit integer, p_worker text, p_token uuid,
                                   p_lease double precision, p_spec jsonb,
                                   p_tasks text[] DEFAULT NULL)
RETURNS TABLE (id text, task text, queue text, priority smallint, args jsonb, headers jsonb,
               attempts integer, max_retries integer, expires_at timestamptz,
               visibility_timeout integer, acks_late boolean, signature text, note text)
LANGUAGE plpgsql
-- Its own planner settings: the claim connection turns sorts off for job_claim, which
-- this claim's round robin needs (and a plan costed with sorts off is JIT-compiled); and
-- memory to sort a backlog of ~100k ready jobs without spilling to disk.
SET enable_sort = on
SET jit = off
SET work_mem = '64MB'
AS $$
#variable_conflict use_column
DECLARE
    v_queue jsonb := p_spec -> 'queue';
    v_spec jsonb;
    v_budget integer := p_limit;
    v_taken integer := 0;
    v_wait double precision;
    v_busy boolean := false;
    v_missing text[] := ARRAY[]::text[];
    v_full text[] := ARRAY[]::text[];
    v_blocked text[] := ARRAY[]::text[];
    v_keys integer := 0;
    v_rates text[];
    v_rate_keys text[];
    v_cursor refcursor;
    v_cand record;
    v_job record;
    v_limit_key text;
    v_key text;
    v_lock integer;
    v_got double precision;
    v_ok boolean;
    i integer;
BEGIN
    PERFORM set_config('synchronous_commit',
                       CASE current_setting('synchronous_commit') WHEN 'off' THEN 'on'
                       ELSE current_setting('synchronous_commit') END, true);
    IF EXISTS (SELECT 1 FROM {ns}.paused_queues AS p WHERE p.queue = p_queue) THEN
        RETURN;
    END IF;
    IF v_queue ? 'concurrency' THEN
        v_lock := {ns}.limiter_lock('concurrency', 'queue:' || p_queue, '');
        IF v_lock IS NULL THEN
            v_missing := v_missing || ('concurrency queue:' || p_queue);
            IF NOT (v_queue ->> 'fail_open')::boolean THEN
                v_budget := 0;
            END IF;
        ELSIF v_lock = 0 THEN
            v_busy := true;
            v_budget := 0;
        ELSE
            v_budget := least(v_budget, (v_queue ->> 'concurrency')::integer - (
                SELECT count(*) FROM {ns}.jobs AS j
                WHERE j.queue = p_queue AND j.state = 'running' AND j.limit_key IS NOT NULL)::integer);
        END IF;
    END IF;
    IF v_budget > 0 THEN
        -- Round robin across fair keys (a task, and its group key's value): every key's first
        -- job, then every key's second, ...; priority then FIFO inside a key. With a group
        -- key (p_spec.fair) every ready job of the queue is read, else only the first few
        -- in the claim index's order.
        IF (p_spec ->> 'fair')::boolean THEN
            OPEN v_cursor FOR
                SELECT c.id, c.task, c.fair_key,
                       row_number() OVER (PARTITION BY c.fair_key ORDER BY c.priority DESC, c.seq) AS turn
                FROM (
                    SELECT j.id, j.task, j.priority, j.seq,
                           j.task || '/'
                               || coalesce(j.args ->> f.field, j.headers ->> f.field, '') AS fair_key
                    FROM {ns}.jobs AS j
                    LEFT JOIN (SELECT t.key AS task, t.value ->> 'fair_key' AS field
                               FROM jsonb_each(p_spec -> 'tasks') AS t) AS f ON f.task = j.task
                    WHERE j.queue = p_queue AND j.state IN ('queued', 'retried') AND j.not_before <= now()
                      AND (p_tasks IS NULL OR j.task = ANY(p_tasks))  -- deploy-safe: registered tasks only
                ) AS c
                ORDER BY turn, c.priority DESC, c.seq
                LIMIT p_limit * 4 + 1000;
        ELSE
            OPEN v_cursor FOR
                SELECT c.id, c.task, c.task || '/' AS fair_key,
                       row_number() OVER (PARTITION BY c.task ORDER BY c.priority DESC, c.seq) AS turn
                FROM (
                    SELECT j.id, j.task, j.priority, j.seq
                    FROM {ns}.jobs AS j
                    WHERE j.queue = p_queue AND j.state IN ('queued', 'retried') AND j.not_before <= now()
                      AND (p_tasks IS NULL OR j.task = ANY(p_tasks))  -- deploy-safe: registered tasks only
                    ORDER BY j.priority DESC, j.seq
                    LIMIT p_limit * 4 + 100
                ) AS c
                ORDER BY turn, c.priority DESC, c.seq;
        END IF;
        LOOP
            FETCH v_cursor INTO v_cand;
            EXIT WHEN NOT FOUND OR v_taken >= v_budget;
            IF v_cand.turn = 1 THEN
                v_keys := v_keys + 1;
            ELSIF cardinality(v_blocked) >= v_keys THEN
                EXIT;  -- every key is over a limit: nothing further can start
            END IF;
            CONTINUE WHEN v_cand.fair_key = ANY(v_blocked);
            SELECT j.args, j.headers INTO v_job FROM {ns}.jobs AS j WHERE j.id = v_cand.id;
            v_spec := p_spec -> 'tasks' -> v_cand.task;
            v_ok := true;
            v_limit_key := '';
            v_rates := ARRAY[]::text[];
            v_rate_keys := ARRAY[]::text[];
            IF v_queue ? 'rate' THEN
                v_rates := v_rates || ('queue:' || p_queue);
                v_rate_keys := v_rate_keys || ''::text;
            END IF;
            IF v_spec ? 'rate' THEN
                v_rates := v_rates || ('task:' || v_cand.task);
                v_rate_keys := v_rate_keys || ''::text;
            END IF;
            IF v_spec ? 'group_key' THEN
                v_rates := v_rates || ('group:' || v_cand.task);
                v_rate_keys := v_rate_keys || coalesce(v_job.args ->> (v_spec ->> 'group_key'),
                                                       v_job.headers ->> (v_spec ->> 'group_key'), '');
            END IF;
            IF v_spec ? 'concurrency' THEN
                v_key := '';
                IF v_spec ? 'concurrency_key' THEN
                    v_key := coalesce(v_job.args ->> (v_spec ->> 'concurrency_key'),
                                      v_job.headers ->> (v_spec ->> 'concurrency_key'), '');
                END IF;
                v_limit_key := 'task:' || v_cand.task || '/' || v_key;
                IF v_limit_key = ANY(v_full) THEN
                    v_ok := false;
                ELSE
                    v_lock := {ns}.limiter_lock('concurrency', 'task:' || v_cand.task, v_key);
                    IF v_lock IS NULL THEN
                        v_missing := v_missing || ('concurrency task:' || v_cand.task);
                        v_ok := (v_spec ->> 'fail_open')::boolean;
                    ELSIF v_lock = 0 THEN
                        v_busy := true;
                        v_ok := false;
                    ELSIF (SELECT count(*) FROM {ns}.jobs AS j
                           WHERE j.limit_key = v_limit_key AND j.state = 'running')
                          >= (v_spec ->> 'concurrency')::integer THEN
                        v_full := v_full || v_limit_key;
                        v_ok := false;
                    END IF;
                END IF;
            END IF;
            i := 1;
            WHILE v_ok AND i <= cardinality(v_rates) LOOP
                IF (v_rates[i] || '/' || v_rate_keys[i]) = ANY(v_full) THEN
                    v_ok := false;
                    EXIT;
                END IF;
                v_lock := {ns}.limiter_lock('rate', v_rates[i], v_rate_keys[i]);
                IF v_lock IS NULL THEN
                    v_missing := v_missing || ('rate ' || v_rates[i]);
                    v_ok := coalesce((CASE WHEN v_rates[i] = 'queue:' || p_queue THEN v_queue
                                      ELSE v_spec END ->> 'fail_open')::boolean, true);
                    v_rates[i] := NULL;
                ELSIF v_lock = 0 THEN
                    v_busy := true;
                    v_ok := false;
                ELSE
                    v_got := {ns}.limiter_take(v_rates[i], v_rate_keys[i], false);
                    IF v_got > 0 THEN
                        v_full := v_full || (v_rates[i] || '/' || v_rate_keys[i]);
                        v_wait := least(v_wait, v_got);
                        v_ok := false;
                    END IF;
                END IF;
                i := i + 1;
            END LOOP;
            IF NOT v_ok THEN
                v_blocked := v_blocked || v_cand.fair_key;
                CONTINUE;
            END IF;
            UPDATE {ns}.jobs AS j
            SET state = 'running',
                attempts = j.attempts + 1,
                started_at = clock_timestamp(),  -- when its tokens were taken
                worker_id = p_worker,
                lease_token = p_token,
                lease_expires_at = now() + make_interval(secs => coalesce(j.visibility_timeout, p_lease)),
                limit_key = v_limit_key
            WHERE j.id = (SELECT s.id FROM {ns}.jobs AS s
                          WHERE s.id = v_cand.id AND s.state IN ('queued', 'retried')
                          FOR UPDATE SKIP LOCKED)
            RETURNING j.id, j.task, j.queue, j.priority,
                      nullif(j.args, '{{}}'::jsonb), nullif(j.headers - 'stem-signature', '{{}}'::jsonb),
                      j.attempts, j.max_retries, j.expires_at, j.visibility_timeout, j.acks_late,
                      j.headers ->> 'stem-signature', NULL::text
            INTO id, task, queue, priority, args, headers, attempts, max_retries, expires_at,
                 visibility_timeout, acks_late, signature, note;
            IF FOUND THEN
                FOR i IN 1 .. coalesce(cardinality(v_rates), 0) LOOP
                    IF v_rates[i] IS NOT NULL THEN
                        PERFORM {ns}.limiter_take(v_rates[i], v_rate_keys[i], true);
                    END IF;
                END LOOP;
                v_taken := v_taken + 1;
                RETURN NEXT;
            END IF;
        END LOOP;
        CLOSE v_cursor;
    END IF;
    IF v_wait IS NOT NULL OR v_busy OR cardinality(v_missing) > 0 THEN
        id := NULL; task := NULL; queue := NULL; priority := NULL; args := NULL; headers := NULL;
        attempts := NULL; max_retries := NULL; expires_at := NULL; visibility_timeout := NULL;
        acks_late := NULL; signature := NULL;
        note := jsonb_build_object('wait', v_wait, 'busy', v_busy,
                                   'missing', to_jsonb(ARRAY(SELECT DISTINCT unnest(v_missing))))::text;
        RETURN NEXT;
    END IF;
END
$$;

CREATE VIEW {ns}.limiter_state AS
SELECT l.kind, l.scope, l.key, l.per_second, l.burst, l.concurrency, l.key_field, l.fail_open,
       CASE WHEN l.kind = 'rate' THEN
           least(l.burst, coalesce(l.tokens, l.burst)
                 + l.per_second * greatest(0, extract(epoch FROM now() - l.refilled_at)))
       END AS tokens,
       (SELECT count(*) FROM {ns}.jobs AS j
        WHERE j.state = 'running' AND j.limit_key IS NOT NULL
          AND CASE WHEN starts_with(l.scope, 'queue:') THEN j.queue = substr(l.scope, 7)
                   WHEN l.kind = 'rate' THEN false
                   WHEN l.key = '' AND l.key_field IS NOT NULL
                       THEN starts_with(j.limit_key, l.scope || '/')
                   ELSE j.limit_key = l.scope || '/' || l.key END) AS running,
       (SELECT count(*) FROM {ns}.jobs AS j
        WHERE j.state IN ('queued', 'retried') AND j.not_before <= now()
          AND CASE WHEN starts_with(l.scope, 'queue:') THEN j.queue = substr(l.scope, 7)
                   ELSE j.task = substr(l.scope, strpos(l.scope, ':') + 1) END
          AND (l.key = '' OR coalesce(j.args ->> l.key_field, j.headers ->> l.key_field, '') = l.key))
           AS ready
FROM {ns}.limiters AS l;
"""

DOWNGRADE = """
DROP VIEW {ns}.limiter_state;
DROP FUNCTION {ns}.claim_limited(text, integer, text, uuid, double precision, jsonb, text[]);
DROP FUNCTION {ns}.limiter_take(text, text, boolean);
DROP FUNCTION {ns}.limiter_lock(text, text, text);
DROP TABLE {ns}.limiters;
DROP INDEX {ns}.jobs_limit_queue_running_idx;
DROP INDEX {ns}.jobs_limit_running_idx;
ALTER TABLE {ns}.jobs DROP COLUMN limit_key;
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
