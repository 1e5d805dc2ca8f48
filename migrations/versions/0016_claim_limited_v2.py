"""The limited claim spends its rate tokens in memory: ``claim_limited_v2``.

Revision ID: 0016
Revises: 0015

``claim_limited`` (0013) refilled a rate bucket and took its token with two UPDATEs of the
limiter row for every job it started: 40 updates of one row for a claim of 20 jobs, which
under load made a claim slow enough that tokens overflowed the bucket meanwhile (a rate
of 200/s started 110-150/s on a saturated machine). ``claim_limited_v2`` is the same
claim (same arguments, rows and notes) but refills each bucket it locks once, when it
first needs it, spends its tokens in a variable and writes them back once at the end
(the row stays locked by the claim throughout, as before). ``claim_limited`` stays, so
workers of either version can run against this schema during a deploy.
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE FUNCTION {ns}.claim_limited_v2(p_queue text, p_limit integer, p_worker text, p_token uuid,
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
    v_rate_per double precision;
    v_ok boolean;
    i integer;
    -- The rate buckets this claim locked: refilled once, spent here, written back once.
    v_buckets text[] := ARRAY[]::text[];
    v_scopes text[] := ARRAY[]::text[];
    v_bkeys text[] := ARRAY[]::text[];
    v_tokens double precision[] := ARRAY[]::double precision[];
    v_per double precision[] := ARRAY[]::double precision[];
    v_spend integer[];
    v_b integer;
    v_bucket text;
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
            v_spend := ARRAY[]::integer[];
            WHILE v_ok AND i <= cardinality(v_rates) LOOP
                v_bucket := v_rates[i] || '/' || v_rate_keys[i];
                IF v_bucket = ANY(v_full) THEN
                    v_ok := false;
                    EXIT;
                END IF;
                v_b := array_position(v_buckets, v_bucket);
                IF v_b IS NULL THEN
                    v_lock := {ns}.limiter_lock('rate', v_rates[i], v_rate_keys[i]);
                    IF v_lock IS NULL THEN
                        v_missing := v_missing || ('rate ' || v_rates[i]);
                        v_ok := coalesce((CASE WHEN v_rates[i] = 'queue:' || p_queue THEN v_queue
                                          ELSE v_spec END ->> 'fail_open')::boolean, true);
                    ELSIF v_lock = 0 THEN
                        v_busy := true;
                        v_ok := false;
                    ELSE  -- locked until this claim ends: refilled to now, once
                        UPDATE {ns}.limiters AS l
                        SET tokens = least(l.burst, coalesce(l.tokens, l.burst) + l.per_second
                                     * greatest(0, extract(epoch FROM clock_timestamp() - l.refilled_at))),
                            refilled_at = greatest(l.refilled_at, clock_timestamp())
                        WHERE l.kind = 'rate' AND l.scope = v_rates[i] AND l.key = v_rate_keys[i]
                        RETURNING l.tokens, l.per_second INTO v_got, v_rate_per;
                        v_buckets := v_buckets || v_bucket;
                        v_scopes := v_scopes || v_rates[i];
                        v_bkeys := v_bkeys || v_rate_keys[i];
                        v_tokens := v_tokens || v_got;
                        v_per := v_per || v_rate_per;
                        v_b := cardinality(v_buckets);
                    END IF;
                END IF;
                IF v_b IS NOT NULL THEN
                    IF v_tokens[v_b] < 1 THEN
                        v_full := v_full || v_bucket;
                        v_wait := least(v_wait, (1 - v_tokens[v_b]) / v_per[v_b]);
                        v_ok := false;
                    ELSE
                        v_spend := v_spend || v_b;
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
                FOR i IN 1 .. coalesce(cardinality(v_spend), 0) LOOP
                    v_tokens[v_spend[i]] := v_tokens[v_spend[i]] - 1;
                END LOOP;
                v_taken := v_taken + 1;
                RETURN NEXT;
            END IF;
        END LOOP;
        CLOSE v_cursor;
    END IF;
    FOR i IN 1 .. cardinality(v_buckets) LOOP
        UPDATE {ns}.limiters AS l SET tokens = v_tokens[i]
        WHERE l.kind = 'rate' AND l.scope = v_scopes[i] AND l.key = v_bkeys[i];
    END LOOP;
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
"""

DOWNGRADE = """
DROP FUNCTION {ns}.claim_limited_v2(text, integer, text, uuid, double precision, jsonb, text[]);
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
