-- The schema of one stem_pg namespace, as migrations/ builds it up to revision 0021.
--
-- @NAMESPACE@ stands for the namespace's quoted schema name ("prod-us-east"). It is not
-- SQL, so it stands for nothing else: generating this file checks that the dump held none.
--
-- Generated, not written: the pg_dump --schema-only (PostgreSQL 15) of a freshly
-- migrated namespace, without owners, privileges, SET lines, pg_dump's comments and
-- alembic's version table. stem_pg never runs this file: migrations build the schema,
-- and tests/integration/test_schema_snapshot.py fails when they build something else.
-- After changing a migration, regenerate it and review the diff:
--
--     STEM_SCHEMA_SNAPSHOT=update pytest tests/integration/test_schema_snapshot.py

CREATE SCHEMA @NAMESPACE@;

CREATE FUNCTION @NAMESPACE@.canvas_enqueue(canvas text, member_position integer, value jsonb) RETURNS void
    LANGUAGE sql
    AS $$
    WITH member AS (
        UPDATE @NAMESPACE@.canvas_members
        SET enqueued_at = now()
        WHERE canvas_id = canvas AND position = member_position AND enqueued_at IS NULL
        RETURNING task_id, task, job, result_arg
    )
    INSERT INTO @NAMESPACE@.jobs (id, task, queue, priority, args, headers, max_retries, not_before,
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

CREATE FUNCTION @NAMESPACE@.canvas_member_done(ns text, finished_id text) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    outcome record;
    member record;
    canvas record;
    failure record;
BEGIN
    SELECT * INTO outcome FROM @NAMESPACE@.job_outcome(finished_id);
    UPDATE @NAMESPACE@.canvas_members AS m
    SET state = outcome.state, result = outcome.result, error = outcome.error, finished_at = now()
    WHERE m.task_id = finished_id AND m.state = 'pending'
    RETURNING m.canvas_id, m.position, m.task INTO member;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- The row lock taken here serialises racing members: exactly one sees pending = 0.
    UPDATE @NAMESPACE@.canvases AS c
    SET pending = c.pending - CASE WHEN member.position < c.size THEN 1 ELSE 0 END,
        failed = c.failed + CASE WHEN outcome.state <> 'succeeded' THEN 1 ELSE 0 END
    WHERE c.id = member.canvas_id
    RETURNING c.* INTO canvas;

    IF canvas.kind = 'chain' THEN
        IF outcome.state <> 'succeeded' THEN
            PERFORM @NAMESPACE@.canvas_stop(ns, canvas.id,
                'chain stopped: link ' || member.position || ' (' || member.task || ') '
                || outcome.state || ': ' || coalesce(outcome.error, 'no error recorded'));
        ELSIF canvas.pending > 0 THEN
            PERFORM @NAMESPACE@.canvas_enqueue(canvas.id, member.position + 1, outcome.result);
        ELSE
            UPDATE @NAMESPACE@.canvases SET state = 'succeeded', finished_at = now() WHERE id = canvas.id;
        END IF;
    ELSIF member.position = canvas.size THEN
        UPDATE @NAMESPACE@.canvases
        SET state = CASE WHEN outcome.state = 'succeeded' THEN 'succeeded' ELSE 'failed' END,
            error = CASE WHEN outcome.state <> 'succeeded'
                         THEN 'callback (' || member.task || ') ' || outcome.state || ': '
                              || coalesce(outcome.error, 'no error recorded') END,
            finished_at = now()
        WHERE id = canvas.id;
    ELSIF canvas.pending = 0 THEN
        IF canvas.failed > 0 THEN
            SELECT m.position, m.task, m.state, m.error INTO failure
            FROM @NAMESPACE@.canvas_members AS m
            WHERE m.canvas_id = canvas.id AND m.position < canvas.size AND m.state <> 'succeeded'
            ORDER BY m.position
            LIMIT 1;
            PERFORM @NAMESPACE@.canvas_stop(ns, canvas.id,
                canvas.kind || ' member ' || failure.position || ' (' || failure.task || ') '
                || failure.state || ': ' || coalesce(failure.error, 'no error recorded'));
        ELSIF canvas.kind = 'chord' THEN
            PERFORM @NAMESPACE@.canvas_enqueue(canvas.id, canvas.size,
                (SELECT coalesce(jsonb_agg(m.result ORDER BY m.position), '[]'::jsonb)
                 FROM @NAMESPACE@.canvas_members AS m
                 WHERE m.canvas_id = canvas.id AND m.position < canvas.size));
        ELSE
            UPDATE @NAMESPACE@.canvases SET state = 'succeeded', finished_at = now() WHERE id = canvas.id;
        END IF;
    END IF;
END;
$$;

CREATE FUNCTION @NAMESPACE@.canvas_stop(ns text, canvas text, reason text) RETURNS void
    LANGUAGE sql
    AS $$
    UPDATE @NAMESPACE@.canvases SET state = 'failed', error = reason, finished_at = now()
    WHERE id = canvas AND state = 'running';
    WITH stopped AS (
        UPDATE @NAMESPACE@.canvas_members
        SET state = 'cancelled', error = reason, finished_at = now()
        WHERE canvas_id = canvas AND state = 'pending' AND enqueued_at IS NULL
        RETURNING task_id, task, job
    ),
    stored AS (
        INSERT INTO @NAMESPACE@.results (id, task, queue, priority, state, error, attempts, enqueued_at,
                                  finished_at, expires_at)
        SELECT s.task_id, s.task, s.job ->> 'queue', (s.job ->> 'priority')::smallint, 'cancelled',
               reason, 0, now(), now(), now() + make_interval(secs => c.result_ttl)
        FROM stopped AS s, @NAMESPACE@.canvases AS c
        WHERE c.id = canvas
        ON CONFLICT (id) DO NOTHING
        RETURNING id
    )
    SELECT pg_notify(ns || ':done', string_agg(id, ',')) FROM stored HAVING count(*) > 0;
$$;

CREATE FUNCTION @NAMESPACE@.claim_limited(p_queue text, p_limit integer, p_worker text, p_token uuid, p_lease double precision, p_spec jsonb, p_tasks text[] DEFAULT NULL::text[]) RETURNS TABLE(id text, task text, queue text, priority smallint, args jsonb, headers jsonb, attempts integer, max_retries integer, expires_at timestamp with time zone, visibility_timeout integer, acks_late boolean, signature text, note text)
    LANGUAGE plpgsql
    SET enable_sort TO 'on'
    SET jit TO 'off'
    SET work_mem TO '64MB'
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
    IF EXISTS (SELECT 1 FROM @NAMESPACE@.paused_queues AS p WHERE p.queue = p_queue) THEN
        RETURN;
    END IF;
    IF v_queue ? 'concurrency' THEN
        v_lock := @NAMESPACE@.limiter_lock('concurrency', 'queue:' || p_queue, '');
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
                SELECT count(*) FROM @NAMESPACE@.jobs AS j
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
                    FROM @NAMESPACE@.jobs AS j
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
                    FROM @NAMESPACE@.jobs AS j
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
            SELECT j.args, j.headers INTO v_job FROM @NAMESPACE@.jobs AS j WHERE j.id = v_cand.id;
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
                    v_lock := @NAMESPACE@.limiter_lock('concurrency', 'task:' || v_cand.task, v_key);
                    IF v_lock IS NULL THEN
                        v_missing := v_missing || ('concurrency task:' || v_cand.task);
                        v_ok := (v_spec ->> 'fail_open')::boolean;
                    ELSIF v_lock = 0 THEN
                        v_busy := true;
                        v_ok := false;
                    ELSIF (SELECT count(*) FROM @NAMESPACE@.jobs AS j
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
                v_lock := @NAMESPACE@.limiter_lock('rate', v_rates[i], v_rate_keys[i]);
                IF v_lock IS NULL THEN
                    v_missing := v_missing || ('rate ' || v_rates[i]);
                    v_ok := coalesce((CASE WHEN v_rates[i] = 'queue:' || p_queue THEN v_queue
                                      ELSE v_spec END ->> 'fail_open')::boolean, true);
                    v_rates[i] := NULL;
                ELSIF v_lock = 0 THEN
                    v_busy := true;
                    v_ok := false;
                ELSE
                    v_got := @NAMESPACE@.limiter_take(v_rates[i], v_rate_keys[i], false);
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
            UPDATE @NAMESPACE@.jobs AS j
            SET state = 'running',
                attempts = j.attempts + 1,
                started_at = clock_timestamp(),  -- when its tokens were taken
                worker_id = p_worker,
                lease_token = p_token,
                lease_expires_at = now() + make_interval(secs => coalesce(j.visibility_timeout, p_lease)),
                limit_key = v_limit_key
            WHERE j.id = (SELECT s.id FROM @NAMESPACE@.jobs AS s
                          WHERE s.id = v_cand.id AND s.state IN ('queued', 'retried')
                          FOR UPDATE SKIP LOCKED)
            RETURNING j.id, j.task, j.queue, j.priority,
                      nullif(j.args, '{}'::jsonb), nullif(j.headers - 'stem-signature', '{}'::jsonb),
                      j.attempts, j.max_retries, j.expires_at, j.visibility_timeout, j.acks_late,
                      j.headers ->> 'stem-signature', NULL::text
            INTO id, task, queue, priority, args, headers, attempts, max_retries, expires_at,
                 visibility_timeout, acks_late, signature, note;
            IF FOUND THEN
                FOR i IN 1 .. coalesce(cardinality(v_rates), 0) LOOP
                    IF v_rates[i] IS NOT NULL THEN
                        PERFORM @NAMESPACE@.limiter_take(v_rates[i], v_rate_keys[i], true);
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

CREATE FUNCTION @NAMESPACE@.claim_limited_v2(p_queue text, p_limit integer, p_worker text, p_token uuid, p_lease double precision, p_spec jsonb, p_tasks text[] DEFAULT NULL::text[]) RETURNS TABLE(id text, task text, queue text, priority smallint, args jsonb, headers jsonb, attempts integer, max_retries integer, expires_at timestamp with time zone, visibility_timeout integer, acks_late boolean, signature text, note text)
    LANGUAGE plpgsql
    SET enable_sort TO 'on'
    SET jit TO 'off'
    SET work_mem TO '64MB'
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
    IF EXISTS (SELECT 1 FROM @NAMESPACE@.paused_queues AS p WHERE p.queue = p_queue) THEN
        RETURN;
    END IF;
    IF v_queue ? 'concurrency' THEN
        v_lock := @NAMESPACE@.limiter_lock('concurrency', 'queue:' || p_queue, '');
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
                SELECT count(*) FROM @NAMESPACE@.jobs AS j
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
                       row_number() OVER (PARTITION BY c.fair_key ORDER BY c.priority DESC, c.not_before, c.seq) AS turn
                FROM (
                    SELECT j.id, j.task, j.priority, j.not_before, j.seq,
                           j.task || '/'
                               || coalesce(j.args ->> f.field, j.headers ->> f.field, '') AS fair_key
                    FROM @NAMESPACE@.jobs AS j
                    LEFT JOIN (SELECT t.key AS task, t.value ->> 'fair_key' AS field
                               FROM jsonb_each(p_spec -> 'tasks') AS t) AS f ON f.task = j.task
                    WHERE j.queue = p_queue AND j.state IN ('queued', 'retried') AND j.not_before <= now()
                      AND (p_tasks IS NULL OR j.task = ANY(p_tasks))  -- deploy-safe: registered tasks only
                ) AS c
                ORDER BY turn, c.priority DESC, c.not_before, c.seq
                LIMIT p_limit * 4 + 1000;
        ELSE
            OPEN v_cursor FOR
                SELECT c.id, c.task, c.task || '/' AS fair_key,
                       row_number() OVER (PARTITION BY c.task ORDER BY c.priority DESC, c.not_before, c.seq) AS turn
                FROM (
                    SELECT j.id, j.task, j.priority, j.not_before, j.seq
                    FROM @NAMESPACE@.jobs AS j
                    WHERE j.queue = p_queue AND j.state IN ('queued', 'retried') AND j.not_before <= now()
                      AND (p_tasks IS NULL OR j.task = ANY(p_tasks))  -- deploy-safe: registered tasks only
                    ORDER BY j.priority DESC, j.not_before, j.seq
                    LIMIT p_limit * 4 + 100
                ) AS c
                ORDER BY turn, c.priority DESC, c.not_before, c.seq;
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
            SELECT j.args, j.headers INTO v_job FROM @NAMESPACE@.jobs AS j WHERE j.id = v_cand.id;
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
                    v_lock := @NAMESPACE@.limiter_lock('concurrency', 'task:' || v_cand.task, v_key);
                    IF v_lock IS NULL THEN
                        v_missing := v_missing || ('concurrency task:' || v_cand.task);
                        v_ok := (v_spec ->> 'fail_open')::boolean;
                    ELSIF v_lock = 0 THEN
                        v_busy := true;
                        v_ok := false;
                    ELSIF (SELECT count(*) FROM @NAMESPACE@.jobs AS j
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
                    v_lock := @NAMESPACE@.limiter_lock('rate', v_rates[i], v_rate_keys[i]);
                    IF v_lock IS NULL THEN
                        v_missing := v_missing || ('rate ' || v_rates[i]);
                        v_ok := coalesce((CASE WHEN v_rates[i] = 'queue:' || p_queue THEN v_queue
                                          ELSE v_spec END ->> 'fail_open')::boolean, true);
                    ELSIF v_lock = 0 THEN
                        v_busy := true;
                        v_ok := false;
                    ELSE  -- locked until this claim ends: refilled to now, once
                        UPDATE @NAMESPACE@.limiters AS l
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
            UPDATE @NAMESPACE@.jobs AS j
            SET state = 'running',
                attempts = j.attempts + 1,
                started_at = clock_timestamp(),  -- when its tokens were taken
                worker_id = p_worker,
                lease_token = p_token,
                lease_expires_at = now() + make_interval(secs => coalesce(j.visibility_timeout, p_lease)),
                limit_key = v_limit_key
            WHERE j.id = (SELECT s.id FROM @NAMESPACE@.jobs AS s
                          WHERE s.id = v_cand.id AND s.state IN ('queued', 'retried')
                          FOR UPDATE SKIP LOCKED)
            RETURNING j.id, j.task, j.queue, j.priority,
                      nullif(j.args, '{}'::jsonb), nullif(j.headers - 'stem-signature', '{}'::jsonb),
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
        UPDATE @NAMESPACE@.limiters AS l SET tokens = v_tokens[i]
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

CREATE FUNCTION @NAMESPACE@.claim_ready(p_queue text, p_limit integer, p_worker text, p_token uuid, p_lease double precision, p_tasks text[] DEFAULT NULL::text[]) RETURNS TABLE(id text, task text, queue text, priority smallint, args jsonb, headers jsonb, attempts integer, max_retries integer, expires_at timestamp with time zone, visibility_timeout integer, acks_late boolean, signature text, waited double precision, args_size integer)
    LANGUAGE plpgsql
    SET enable_sort TO 'off'
    SET jit TO 'off'
    AS $$
#variable_conflict use_column
BEGIN
    -- A durable commit, even where the session's default is not (job_claim's "durable").
    IF current_setting('synchronous_commit') = 'off' THEN
        PERFORM set_config('synchronous_commit', 'on', true);
    END IF;
    RETURN QUERY
    WITH picked AS MATERIALIZED (
        SELECT j.id
        FROM @NAMESPACE@.jobs AS j
        WHERE j.queue = p_queue
          AND j.state IN ('queued', 'retried')
          AND (p_tasks IS NULL OR j.task = ANY(p_tasks))
          AND j.not_before <= now()
          AND NOT EXISTS (SELECT 1 FROM @NAMESPACE@.paused_queues AS p WHERE p.queue = p_queue)
        ORDER BY j.priority DESC, j.not_before, j.seq
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE @NAMESPACE@.jobs AS j
    SET state = 'running',
        attempts = j.attempts + 1,
        started_at = now(),
        worker_id = p_worker,
        lease_token = p_token,
        lease_expires_at = now() + make_interval(secs => coalesce(j.visibility_timeout, p_lease))
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.id, j.task, j.queue, j.priority,
              CASE WHEN pg_column_size(j.args) <= 8 AND j.args = '{}'::jsonb THEN NULL
                   ELSE j.args END,
              nullif(j.headers - 'stem-signature', '{}'::jsonb),
              j.attempts, j.max_retries, j.expires_at, j.visibility_timeout, j.acks_late,
              j.headers ->> 'stem-signature',
              extract(epoch FROM now() - greatest(j.enqueued_at, j.not_before))::float8,
              pg_column_size(j.args);
END;
$$;

CREATE FUNCTION @NAMESPACE@.job_done() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF OLD.headers ? 'stem-canvas' THEN
        PERFORM @NAMESPACE@.canvas_member_done(TG_TABLE_SCHEMA, OLD.id);
    END IF;
    IF OLD.headers ? 'stem-workflow' THEN
        PERFORM @NAMESPACE@.wf_job_done(TG_TABLE_SCHEMA, OLD.headers ->> 'stem-workflow', OLD.id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION @NAMESPACE@.job_outcome(finished_id text) RETURNS TABLE(state text, result jsonb, error text)
    LANGUAGE sql
    AS $$
    SELECT coalesce(r.state, 'failed'), r.result,
           CASE WHEN r.id IS NULL THEN 'finished without a result' ELSE r.error END
    FROM (SELECT finished_id AS id) AS wanted
    LEFT JOIN @NAMESPACE@.results AS r ON r.id = wanted.id;
$$;

CREATE FUNCTION @NAMESPACE@.limiter_lock(p_kind text, p_scope text, p_key text) RETURNS integer
    LANGUAGE plpgsql
    AS $$
BEGIN
    -- 1: locked by this transaction (until it ends); 0: another claim holds it; NULL: no row.
    -- A group's row is made from its limit's row on first use.
    IF p_key <> '' THEN
        INSERT INTO @NAMESPACE@.limiters (kind, scope, key, per_second, burst, concurrency, key_field,
                                   fail_open, tokens)
        SELECT kind, scope, p_key, per_second, burst, concurrency, key_field, fail_open, burst
        FROM @NAMESPACE@.limiters
        WHERE kind = p_kind AND scope = p_scope AND key = ''
        ON CONFLICT DO NOTHING;
    END IF;
    PERFORM 1 FROM @NAMESPACE@.limiters
    WHERE kind = p_kind AND scope = p_scope AND key = p_key
    FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
        RETURN 1;
    END IF;
    PERFORM 1 FROM @NAMESPACE@.limiters WHERE kind = p_kind AND scope = p_scope AND key = p_key;
    RETURN CASE WHEN FOUND THEN 0 END;
END
$$;

CREATE FUNCTION @NAMESPACE@.limiter_take(p_scope text, p_key text, p_take boolean) RETURNS double precision
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_tokens double precision;
    v_rate double precision;
BEGIN
    -- A locked rate bucket, refilled to now: 0 when it holds a token (taken with p_take),
    -- else the seconds until it holds one.
    UPDATE @NAMESPACE@.limiters
    SET tokens = least(burst, coalesce(tokens, burst) + per_second
                 * greatest(0, extract(epoch FROM clock_timestamp() - refilled_at))),
        refilled_at = greatest(refilled_at, clock_timestamp())
    WHERE kind = 'rate' AND scope = p_scope AND key = p_key
    RETURNING tokens, per_second INTO v_tokens, v_rate;
    IF v_tokens < 1 THEN
        RETURN (1 - v_tokens) / v_rate;
    END IF;
    IF p_take THEN
        UPDATE @NAMESPACE@.limiters SET tokens = tokens - 1
        WHERE kind = 'rate' AND scope = p_scope AND key = p_key;
    END IF;
    RETURN 0;
END
$$;

CREATE FUNCTION @NAMESPACE@.notify_jobs() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF current_setting('stem.client_notifies', true) = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify(TG_TABLE_SCHEMA || ':jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM new_jobs WHERE not_before <= now()) AS q;
    RETURN NULL;
END;
$$;

CREATE FUNCTION @NAMESPACE@.notify_schedules() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || ':schedules', TG_OP);
    RETURN NULL;
END;
$$;

CREATE FUNCTION @NAMESPACE@.wf_job_done(ns text, run text, finished_id text) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    outcome record;
    ended record;
BEGIN
    SELECT * INTO outcome FROM @NAMESPACE@.job_outcome(finished_id);
    UPDATE @NAMESPACE@.wf_runs AS r
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
    DELETE FROM @NAMESPACE@.wf_waiters WHERE run_id = ended.id;
    PERFORM pg_notify(ns || ':done', ended.id);
    IF ended.parent_run_id IS NOT NULL THEN
        PERFORM @NAMESPACE@.wf_wake(ns, ARRAY[ended.parent_run_id]);
    END IF;
END;
$$;

CREATE FUNCTION @NAMESPACE@.wf_wake(ns text, run_ids text[]) RETURNS integer
    LANGUAGE plpgsql
    AS $$
DECLARE
    woken integer := 0;
    queue_name text;
BEGIN
    FOR queue_name IN
        WITH runs AS (
            UPDATE @NAMESPACE@.wf_runs AS r
            SET updated_at = now()
            WHERE r.id = ANY(run_ids) AND r.status = 'suspended'
            RETURNING r.*
        ),
        resumed AS (
            INSERT INTO @NAMESPACE@.jobs AS j (id, task, queue, priority, args, headers, max_retries)
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

CREATE TABLE @NAMESPACE@.broadcast_fanout (
    message_id bigint NOT NULL,
    subscriber text NOT NULL,
    state text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    not_before timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    result jsonb,
    error text,
    CONSTRAINT broadcast_fanout_state_check CHECK ((state = ANY (ARRAY['pending'::text, 'running'::text, 'delivered'::text, 'succeeded'::text, 'failed'::text, 'cancelled'::text])))
)
WITH (autovacuum_vacuum_scale_factor='0.02');

CREATE TABLE @NAMESPACE@.broadcast_messages (
    id bigint NOT NULL,
    task_id text NOT NULL,
    channel text NOT NULL,
    task text NOT NULL,
    args jsonb DEFAULT '{}'::jsonb NOT NULL,
    headers jsonb DEFAULT '{}'::jsonb NOT NULL,
    delivery text DEFAULT 'at-least-once'::text NOT NULL,
    durable boolean DEFAULT false NOT NULL,
    max_retries integer DEFAULT 0 NOT NULL,
    not_before timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone,
    published_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT broadcast_messages_delivery_check CHECK ((delivery = ANY (ARRAY['at-least-once'::text, 'at-most-once'::text])))
);

CREATE VIEW @NAMESPACE@.broadcast_deliveries AS
 SELECT m.id AS message_id,
    m.task_id,
    m.channel,
    m.task,
    m.delivery,
    f.subscriber AS worker_id,
    f.state,
    f.attempts,
    m.published_at,
    f.started_at,
    f.finished_at,
    f.error,
    f.result
   FROM (@NAMESPACE@.broadcast_fanout f
     JOIN @NAMESPACE@.broadcast_messages m ON ((m.id = f.message_id)));

ALTER TABLE @NAMESPACE@.broadcast_messages ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME @NAMESPACE@.broadcast_messages_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE @NAMESPACE@.broadcast_subscriptions (
    channel text NOT NULL,
    worker_id text NOT NULL,
    subscribed_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE @NAMESPACE@.canvas_members (
    canvas_id text NOT NULL,
    "position" integer NOT NULL,
    task_id text NOT NULL,
    task text NOT NULL,
    job jsonb,
    result_arg text,
    state text DEFAULT 'pending'::text NOT NULL,
    result jsonb,
    error text,
    enqueued_at timestamp with time zone,
    finished_at timestamp with time zone,
    CONSTRAINT canvas_members_state_check CHECK ((state = ANY (ARRAY['pending'::text, 'succeeded'::text, 'failed'::text, 'cancelled'::text])))
);

CREATE TABLE @NAMESPACE@.canvases (
    id text NOT NULL,
    kind text NOT NULL,
    size integer NOT NULL,
    pending integer NOT NULL,
    failed integer DEFAULT 0 NOT NULL,
    state text DEFAULT 'running'::text NOT NULL,
    error text,
    result_ttl double precision DEFAULT 86400 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    CONSTRAINT canvases_kind_check CHECK ((kind = ANY (ARRAY['chain'::text, 'group'::text, 'chord'::text]))),
    CONSTRAINT canvases_state_check CHECK ((state = ANY (ARRAY['running'::text, 'succeeded'::text, 'failed'::text])))
);

CREATE TABLE @NAMESPACE@.control_commands (
    id bigint NOT NULL,
    request_id text NOT NULL,
    command text NOT NULL,
    args jsonb DEFAULT '{}'::jsonb NOT NULL,
    targets text[] DEFAULT '{}'::text[] NOT NULL,
    wants_reply boolean DEFAULT true NOT NULL,
    issued_by text DEFAULT CURRENT_USER NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE @NAMESPACE@.control_commands ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME @NAMESPACE@.control_commands_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE @NAMESPACE@.control_replies (
    request_id text NOT NULL,
    worker_id text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE @NAMESPACE@.dead_letters (
    id bigint NOT NULL,
    task_id text NOT NULL,
    task text NOT NULL,
    queue text NOT NULL,
    priority smallint NOT NULL,
    args jsonb NOT NULL,
    headers jsonb NOT NULL,
    max_retries integer NOT NULL,
    reason text NOT NULL,
    error text,
    errors jsonb DEFAULT '[]'::jsonb NOT NULL,
    attempts integer NOT NULL,
    enqueued_at timestamp with time zone NOT NULL,
    dead_at timestamp with time zone DEFAULT now() NOT NULL,
    replayed_at timestamp with time zone,
    CONSTRAINT dead_letters_reason_check CHECK ((reason = ANY (ARRAY['max_retries_exceeded'::text, 'unregistered_task'::text, 'rejected'::text, 'lease_expired'::text, 'signature_invalid'::text, 'bad_arguments'::text])))
);

ALTER TABLE @NAMESPACE@.dead_letters ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME @NAMESPACE@.dead_letters_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE @NAMESPACE@.jobs (
    id text NOT NULL,
    seq bigint NOT NULL,
    task text NOT NULL,
    queue text NOT NULL,
    priority smallint DEFAULT 0 NOT NULL,
    state text DEFAULT 'queued'::text NOT NULL,
    args jsonb DEFAULT '{}'::jsonb NOT NULL,
    headers jsonb DEFAULT '{}'::jsonb NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    max_retries integer DEFAULT 3 NOT NULL,
    visibility_timeout integer,
    acks_late boolean DEFAULT true NOT NULL,
    not_before timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone,
    enqueued_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    lease_token uuid,
    lease_expires_at timestamp with time zone,
    worker_id text,
    progress jsonb,
    errors jsonb DEFAULT '[]'::jsonb NOT NULL,
    unique_key text,
    unique_until timestamp with time zone,
    debounce_key text,
    limit_key text,
    CONSTRAINT jobs_state_check CHECK ((state = ANY (ARRAY['queued'::text, 'running'::text, 'retried'::text])))
)
WITH (fillfactor='80', autovacuum_vacuum_scale_factor='0.01', autovacuum_vacuum_threshold='1000', autovacuum_analyze_scale_factor='0.02');

ALTER TABLE @NAMESPACE@.jobs ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME @NAMESPACE@.jobs_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE @NAMESPACE@.limiters (
    kind text NOT NULL,
    scope text NOT NULL,
    key text DEFAULT ''::text NOT NULL,
    per_second double precision,
    burst double precision,
    concurrency integer,
    key_field text,
    fail_open boolean DEFAULT true NOT NULL,
    tokens double precision,
    refilled_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT limiters_kind_check CHECK ((kind = ANY (ARRAY['rate'::text, 'concurrency'::text])))
)
WITH (fillfactor='50');

CREATE VIEW @NAMESPACE@.limiter_state AS
 SELECT l.kind,
    l.scope,
    l.key,
    l.per_second,
    l.burst,
    l.concurrency,
    l.key_field,
    l.fail_open,
        CASE
            WHEN (l.kind = 'rate'::text) THEN LEAST(l.burst, (COALESCE(l.tokens, l.burst) + (l.per_second * (GREATEST((0)::numeric, EXTRACT(epoch FROM (now() - l.refilled_at))))::double precision)))
            ELSE NULL::double precision
        END AS tokens,
    ( SELECT count(*) AS count
           FROM @NAMESPACE@.jobs j
          WHERE ((j.state = 'running'::text) AND (j.limit_key IS NOT NULL) AND
                CASE
                    WHEN starts_with(l.scope, 'queue:'::text) THEN (j.queue = substr(l.scope, 7))
                    WHEN (l.kind = 'rate'::text) THEN false
                    WHEN ((l.key = ''::text) AND (l.key_field IS NOT NULL)) THEN starts_with(j.limit_key, (l.scope || '/'::text))
                    ELSE (j.limit_key = ((l.scope || '/'::text) || l.key))
                END)) AS running,
    ( SELECT count(*) AS count
           FROM @NAMESPACE@.jobs j
          WHERE ((j.state = ANY (ARRAY['queued'::text, 'retried'::text])) AND (j.not_before <= now()) AND
                CASE
                    WHEN starts_with(l.scope, 'queue:'::text) THEN (j.queue = substr(l.scope, 7))
                    ELSE (j.task = substr(l.scope, (strpos(l.scope, ':'::text) + 1)))
                END AND ((l.key = ''::text) OR (COALESCE((j.args ->> l.key_field), (j.headers ->> l.key_field), ''::text) = l.key)))) AS ready
   FROM @NAMESPACE@.limiters l;

CREATE SEQUENCE @NAMESPACE@.lock_tokens
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

CREATE TABLE @NAMESPACE@.locks (
    key text NOT NULL,
    owner text NOT NULL,
    token bigint NOT NULL,
    acquired_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL
);

CREATE TABLE @NAMESPACE@.paused_queues (
    queue text NOT NULL,
    paused_at timestamp with time zone DEFAULT now() NOT NULL,
    paused_by text,
    reason text
);

CREATE VIEW @NAMESPACE@.queue_depths AS
 SELECT jobs.queue,
    jobs.priority,
    count(*) FILTER (WHERE ((jobs.state <> 'running'::text) AND (jobs.not_before <= now()))) AS ready,
    count(*) FILTER (WHERE ((jobs.state <> 'running'::text) AND (jobs.not_before > now()))) AS scheduled,
    count(*) FILTER (WHERE (jobs.state = 'running'::text)) AS running
   FROM @NAMESPACE@.jobs
  GROUP BY jobs.queue, jobs.priority;

CREATE TABLE @NAMESPACE@.results (
    id text NOT NULL,
    task text NOT NULL,
    queue text NOT NULL,
    priority smallint NOT NULL,
    state text NOT NULL,
    result jsonb,
    error text,
    traceback text,
    attempts integer NOT NULL,
    enqueued_at timestamp with time zone NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone DEFAULT now() NOT NULL,
    worker_id text,
    expires_at timestamp with time zone,
    CONSTRAINT results_state_check CHECK ((state = ANY (ARRAY['succeeded'::text, 'failed'::text, 'cancelled'::text])))
)
WITH (autovacuum_vacuum_scale_factor='0.02');

CREATE VIEW @NAMESPACE@.queue_health AS
 WITH live AS (
         SELECT jobs.queue,
            count(*) FILTER (WHERE ((jobs.state <> 'running'::text) AND (jobs.not_before <= now()))) AS ready,
            count(*) FILTER (WHERE ((jobs.state <> 'running'::text) AND (jobs.not_before > now()))) AS scheduled,
            count(*) FILTER (WHERE (jobs.state = 'running'::text)) AS running,
            min(jobs.not_before) FILTER (WHERE ((jobs.state <> 'running'::text) AND (jobs.not_before <= now()))) AS oldest_ready
           FROM @NAMESPACE@.jobs
          GROUP BY jobs.queue
        ), done AS (
         SELECT results.queue,
            results.state,
            results.finished_at,
            (EXTRACT(epoch FROM (results.started_at - results.enqueued_at)))::double precision AS wait,
            (EXTRACT(epoch FROM (results.finished_at - results.started_at)))::double precision AS run
           FROM @NAMESPACE@.results
          WHERE (results.finished_at > (now() - '00:15:00'::interval))
        ), recent AS (
         SELECT done.queue,
            percentile_cont((0.5)::double precision) WITHIN GROUP (ORDER BY done.wait) FILTER (WHERE (done.finished_at > (now() - '00:01:00'::interval))) AS wait_p50_1m,
            percentile_cont((0.95)::double precision) WITHIN GROUP (ORDER BY done.wait) FILTER (WHERE (done.finished_at > (now() - '00:01:00'::interval))) AS wait_p95_1m,
            percentile_cont((0.5)::double precision) WITHIN GROUP (ORDER BY done.wait) FILTER (WHERE (done.finished_at > (now() - '00:05:00'::interval))) AS wait_p50_5m,
            percentile_cont((0.95)::double precision) WITHIN GROUP (ORDER BY done.wait) FILTER (WHERE (done.finished_at > (now() - '00:05:00'::interval))) AS wait_p95_5m,
            percentile_cont((0.5)::double precision) WITHIN GROUP (ORDER BY done.wait) FILTER (WHERE (done.finished_at > (now() - '00:15:00'::interval))) AS wait_p50_15m,
            percentile_cont((0.95)::double precision) WITHIN GROUP (ORDER BY done.wait) FILTER (WHERE (done.finished_at > (now() - '00:15:00'::interval))) AS wait_p95_15m,
            percentile_cont((0.5)::double precision) WITHIN GROUP (ORDER BY done.run) FILTER (WHERE (done.finished_at > (now() - '00:01:00'::interval))) AS run_p50_1m,
            percentile_cont((0.95)::double precision) WITHIN GROUP (ORDER BY done.run) FILTER (WHERE (done.finished_at > (now() - '00:01:00'::interval))) AS run_p95_1m,
            percentile_cont((0.5)::double precision) WITHIN GROUP (ORDER BY done.run) FILTER (WHERE (done.finished_at > (now() - '00:05:00'::interval))) AS run_p50_5m,
            percentile_cont((0.95)::double precision) WITHIN GROUP (ORDER BY done.run) FILTER (WHERE (done.finished_at > (now() - '00:05:00'::interval))) AS run_p95_5m,
            percentile_cont((0.5)::double precision) WITHIN GROUP (ORDER BY done.run) FILTER (WHERE (done.finished_at > (now() - '00:15:00'::interval))) AS run_p50_15m,
            percentile_cont((0.95)::double precision) WITHIN GROUP (ORDER BY done.run) FILTER (WHERE (done.finished_at > (now() - '00:15:00'::interval))) AS run_p95_15m,
            count(*) FILTER (WHERE (done.finished_at > (now() - '00:01:00'::interval))) AS finished_1m,
            count(*) FILTER (WHERE (done.finished_at > (now() - '00:05:00'::interval))) AS finished_5m,
            count(*) AS finished_15m,
            count(*) FILTER (WHERE (done.state = 'failed'::text)) AS failed_15m
           FROM done
          GROUP BY done.queue
        )
 SELECT queue,
    COALESCE(live.ready, (0)::bigint) AS ready,
    COALESCE(live.scheduled, (0)::bigint) AS scheduled,
    COALESCE(live.running, (0)::bigint) AS running,
    (EXTRACT(epoch FROM (now() - live.oldest_ready)))::double precision AS oldest_ready_age,
    recent.wait_p50_1m,
    recent.wait_p95_1m,
    recent.wait_p50_5m,
    recent.wait_p95_5m,
    recent.wait_p50_15m,
    recent.wait_p95_15m,
    recent.run_p50_1m,
    recent.run_p95_1m,
    recent.run_p50_5m,
    recent.run_p95_5m,
    recent.run_p50_15m,
    recent.run_p95_15m,
    COALESCE(recent.finished_1m, (0)::bigint) AS finished_1m,
    COALESCE(recent.finished_5m, (0)::bigint) AS finished_5m,
    COALESCE(recent.finished_15m, (0)::bigint) AS finished_15m,
    COALESCE(recent.failed_15m, (0)::bigint) AS failed_15m,
    ((recent.failed_15m)::double precision / (NULLIF(recent.finished_15m, 0))::double precision) AS failure_rate_15m
   FROM (live
     FULL JOIN recent USING (queue));

CREATE TABLE @NAMESPACE@.result_minutes (
    minute timestamp with time zone NOT NULL,
    queue text NOT NULL,
    finished bigint NOT NULL,
    failed bigint NOT NULL,
    waited bigint NOT NULL,
    wait_seconds_sum double precision NOT NULL
);

CREATE TABLE @NAMESPACE@.result_rollup (
    one boolean DEFAULT true NOT NULL,
    rolled_to timestamp with time zone,
    CONSTRAINT result_rollup_one_check CHECK (one)
);

CREATE TABLE @NAMESPACE@.revokes (
    version bigint NOT NULL,
    task_id text NOT NULL,
    reason text,
    terminate boolean DEFAULT false NOT NULL,
    revoked_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL
);

ALTER TABLE @NAMESPACE@.revokes ALTER COLUMN version ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME @NAMESPACE@.revokes_version_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE @NAMESPACE@.schedule_fires (
    schedule text NOT NULL,
    fire_time timestamp with time zone NOT NULL,
    task_id text NOT NULL,
    fired_at timestamp with time zone DEFAULT now() NOT NULL,
    beat_id text,
    fence bigint
);

CREATE TABLE @NAMESPACE@.schedules (
    name text NOT NULL,
    task text NOT NULL,
    spec jsonb NOT NULL,
    kwargs jsonb DEFAULT '{}'::jsonb NOT NULL,
    queue text,
    priority smallint,
    jitter double precision DEFAULT 0 NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    expires_at timestamp with time zone,
    misfire text DEFAULT 'run_once'::text NOT NULL,
    misfire_grace double precision DEFAULT 60 NOT NULL,
    description text,
    next_run_at timestamp with time zone,
    last_run_at timestamp with time zone,
    total_runs bigint DEFAULT 0 NOT NULL,
    last_success_at timestamp with time zone,
    last_error text,
    last_error_at timestamp with time zone,
    drift double precision,
    version integer DEFAULT 1 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    origin text DEFAULT 'store'::text NOT NULL,
    CONSTRAINT schedules_misfire_check CHECK ((misfire = ANY (ARRAY['run_once'::text, 'skip'::text]))),
    CONSTRAINT schedules_origin_check CHECK ((origin = ANY (ARRAY['store'::text, 'code'::text])))
);

CREATE VIEW @NAMESPACE@.task_states AS
 SELECT jobs.id,
    jobs.task,
    jobs.queue,
    jobs.priority,
    jobs.state,
    jobs.attempts,
    jobs.enqueued_at,
    jobs.started_at,
    NULL::timestamp with time zone AS finished_at,
    jobs.worker_id,
    ((jobs.errors -> '-1'::integer) ->> 'error'::text) AS error,
    jobs.not_before,
    jobs.progress
   FROM @NAMESPACE@.jobs
UNION ALL
 SELECT results.id,
    results.task,
    results.queue,
    results.priority,
    results.state,
    results.attempts,
    results.enqueued_at,
    results.started_at,
    results.finished_at,
    results.worker_id,
    results.error,
    NULL::timestamp with time zone AS not_before,
    NULL::jsonb AS progress
   FROM @NAMESPACE@.results;

CREATE TABLE @NAMESPACE@.wf_runs (
    id text NOT NULL,
    workflow text NOT NULL,
    params jsonb DEFAULT '{}'::jsonb NOT NULL,
    status text DEFAULT 'running'::text NOT NULL,
    queue text NOT NULL,
    priority smallint DEFAULT 0 NOT NULL,
    max_retries integer DEFAULT 3 NOT NULL,
    job_id text NOT NULL,
    resumes integer DEFAULT 0 NOT NULL,
    result jsonb,
    error text,
    parent_run_id text,
    parent_step text,
    waiting_for text,
    wake_at timestamp with time zone,
    suspended_at timestamp with time zone,
    deadline_at timestamp with time zone,
    max_suspended double precision,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    CONSTRAINT wf_runs_status_check CHECK ((status = ANY (ARRAY['running'::text, 'suspended'::text, 'completed'::text, 'failed'::text, 'cancelled'::text])))
);

CREATE TABLE @NAMESPACE@.wf_steps (
    run_id text NOT NULL,
    step text NOT NULL,
    seq bigint NOT NULL,
    kind text NOT NULL,
    output jsonb,
    error text,
    job_id text,
    attempt integer,
    finished_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT wf_steps_kind_check CHECK ((kind = ANY (ARRAY['step'::text, 'sleep'::text, 'event'::text, 'child'::text])))
);

ALTER TABLE @NAMESPACE@.wf_steps ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME @NAMESPACE@.wf_steps_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE @NAMESPACE@.wf_waiters (
    run_id text NOT NULL,
    step text NOT NULL,
    topic text NOT NULL,
    deadline_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE @NAMESPACE@.workers (
    id text NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    queues text[] NOT NULL,
    concurrency integer NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    last_heartbeat_at timestamp with time zone DEFAULT now() NOT NULL,
    stopped_at timestamp with time zone,
    tasks jsonb,
    connections smallint
);

CREATE VIEW @NAMESPACE@.workflow_runs AS
 SELECT r.id,
    r.workflow,
    r.status,
    r.params,
    r.result,
    r.error,
    r.parent_run_id,
    r.parent_step,
    r.waiting_for,
    r.wake_at,
    r.job_id,
    r.resumes,
    ( SELECT count(*) AS count
           FROM @NAMESPACE@.wf_steps s
          WHERE (s.run_id = r.id)) AS steps_done,
    r.created_at,
    r.updated_at,
    r.finished_at
   FROM @NAMESPACE@.wf_runs r;

CREATE VIEW @NAMESPACE@.workflow_steps AS
 SELECT wf_steps.run_id,
    wf_steps.step,
    wf_steps.kind,
    wf_steps.seq,
    wf_steps.output,
    wf_steps.error,
    wf_steps.job_id,
    wf_steps.attempt,
    wf_steps.finished_at
   FROM @NAMESPACE@.wf_steps;

ALTER TABLE ONLY @NAMESPACE@.broadcast_fanout
    ADD CONSTRAINT broadcast_fanout_pkey PRIMARY KEY (message_id, subscriber);

ALTER TABLE ONLY @NAMESPACE@.broadcast_messages
    ADD CONSTRAINT broadcast_messages_pkey PRIMARY KEY (id);

ALTER TABLE ONLY @NAMESPACE@.broadcast_subscriptions
    ADD CONSTRAINT broadcast_subscriptions_pkey PRIMARY KEY (channel, worker_id);

ALTER TABLE ONLY @NAMESPACE@.canvas_members
    ADD CONSTRAINT canvas_members_pkey PRIMARY KEY (canvas_id, "position");

ALTER TABLE ONLY @NAMESPACE@.canvases
    ADD CONSTRAINT canvases_pkey PRIMARY KEY (id);

ALTER TABLE ONLY @NAMESPACE@.control_commands
    ADD CONSTRAINT control_commands_pkey PRIMARY KEY (id);

ALTER TABLE ONLY @NAMESPACE@.control_commands
    ADD CONSTRAINT control_commands_request_id_key UNIQUE (request_id);

ALTER TABLE ONLY @NAMESPACE@.control_replies
    ADD CONSTRAINT control_replies_pkey PRIMARY KEY (request_id, worker_id);

ALTER TABLE ONLY @NAMESPACE@.dead_letters
    ADD CONSTRAINT dead_letters_pkey PRIMARY KEY (id);

ALTER TABLE ONLY @NAMESPACE@.jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY @NAMESPACE@.limiters
    ADD CONSTRAINT limiters_pkey PRIMARY KEY (kind, scope, key);

ALTER TABLE ONLY @NAMESPACE@.locks
    ADD CONSTRAINT locks_pkey PRIMARY KEY (key);

ALTER TABLE ONLY @NAMESPACE@.paused_queues
    ADD CONSTRAINT paused_queues_pkey PRIMARY KEY (queue);

ALTER TABLE ONLY @NAMESPACE@.result_minutes
    ADD CONSTRAINT result_minutes_pkey PRIMARY KEY (minute, queue);

ALTER TABLE ONLY @NAMESPACE@.result_rollup
    ADD CONSTRAINT result_rollup_pkey PRIMARY KEY (one);

ALTER TABLE ONLY @NAMESPACE@.results
    ADD CONSTRAINT results_pkey PRIMARY KEY (id);

ALTER TABLE ONLY @NAMESPACE@.revokes
    ADD CONSTRAINT revokes_pkey PRIMARY KEY (version);

ALTER TABLE ONLY @NAMESPACE@.schedule_fires
    ADD CONSTRAINT schedule_fires_pkey PRIMARY KEY (schedule, fire_time);

ALTER TABLE ONLY @NAMESPACE@.schedules
    ADD CONSTRAINT schedules_pkey PRIMARY KEY (name);

ALTER TABLE ONLY @NAMESPACE@.wf_runs
    ADD CONSTRAINT wf_runs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY @NAMESPACE@.wf_steps
    ADD CONSTRAINT wf_steps_pkey PRIMARY KEY (run_id, step);

ALTER TABLE ONLY @NAMESPACE@.wf_waiters
    ADD CONSTRAINT wf_waiters_pkey PRIMARY KEY (run_id, step);

ALTER TABLE ONLY @NAMESPACE@.workers
    ADD CONSTRAINT workers_pkey PRIMARY KEY (id);

CREATE INDEX broadcast_fanout_claim_idx ON @NAMESPACE@.broadcast_fanout USING btree (subscriber, message_id) WHERE (state = 'pending'::text);

CREATE INDEX broadcast_fanout_subscriber_idx ON @NAMESPACE@.broadcast_fanout USING btree (subscriber, state);

CREATE INDEX broadcast_messages_channel_idx ON @NAMESPACE@.broadcast_messages USING btree (channel, id);

CREATE UNIQUE INDEX broadcast_messages_task_id_idx ON @NAMESPACE@.broadcast_messages USING btree (task_id);

CREATE INDEX broadcast_subscriptions_worker_idx ON @NAMESPACE@.broadcast_subscriptions USING btree (worker_id);

CREATE UNIQUE INDEX canvas_members_task_id_idx ON @NAMESPACE@.canvas_members USING btree (task_id);

CREATE INDEX canvases_created_idx ON @NAMESPACE@.canvases USING btree (created_at);

CREATE INDEX control_commands_created_idx ON @NAMESPACE@.control_commands USING btree (created_at);

CREATE INDEX control_replies_created_idx ON @NAMESPACE@.control_replies USING btree (created_at);

CREATE INDEX dead_letters_queue_idx ON @NAMESPACE@.dead_letters USING btree (queue, dead_at);

CREATE INDEX dead_letters_task_id_idx ON @NAMESPACE@.dead_letters USING btree (task_id);

CREATE INDEX jobs_claim_idx ON @NAMESPACE@.jobs USING btree (queue, priority DESC, not_before, seq) WHERE (state = ANY (ARRAY['queued'::text, 'retried'::text]));

CREATE UNIQUE INDEX jobs_debounce_idx ON @NAMESPACE@.jobs USING btree (task, debounce_key) WHERE ((debounce_key IS NOT NULL) AND (state = 'queued'::text));

CREATE INDEX jobs_enqueued_idx ON @NAMESPACE@.jobs USING btree (enqueued_at, id) WHERE (state = ANY (ARRAY['queued'::text, 'retried'::text]));

CREATE INDEX jobs_expires_idx ON @NAMESPACE@.jobs USING btree (expires_at) WHERE ((state = ANY (ARRAY['queued'::text, 'retried'::text])) AND (expires_at IS NOT NULL));

CREATE INDEX jobs_lease_idx ON @NAMESPACE@.jobs USING btree (lease_expires_at) WHERE (state = 'running'::text);

CREATE INDEX jobs_limit_queue_running_idx ON @NAMESPACE@.jobs USING btree (queue) WHERE ((state = 'running'::text) AND (limit_key IS NOT NULL));

CREATE INDEX jobs_limit_running_idx ON @NAMESPACE@.jobs USING btree (limit_key) WHERE ((state = 'running'::text) AND (limit_key IS NOT NULL));

CREATE UNIQUE INDEX jobs_unique_idx ON @NAMESPACE@.jobs USING btree (unique_key) WHERE (unique_key IS NOT NULL);

CREATE INDEX results_enqueued_idx ON @NAMESPACE@.results USING btree (enqueued_at, id);

CREATE INDEX results_expires_idx ON @NAMESPACE@.results USING btree (expires_at) WHERE (expires_at IS NOT NULL);

CREATE INDEX results_finished_idx ON @NAMESPACE@.results USING btree (finished_at);

CREATE INDEX revokes_expires_idx ON @NAMESPACE@.revokes USING btree (expires_at);

CREATE INDEX revokes_task_id_idx ON @NAMESPACE@.revokes USING btree (task_id);

CREATE INDEX schedule_fires_fired_idx ON @NAMESPACE@.schedule_fires USING btree (fired_at);

CREATE INDEX schedules_due_idx ON @NAMESPACE@.schedules USING btree (next_run_at) WHERE enabled;

CREATE INDEX wf_runs_parent_idx ON @NAMESPACE@.wf_runs USING btree (parent_run_id) WHERE (parent_run_id IS NOT NULL);

CREATE INDEX wf_runs_status_idx ON @NAMESPACE@.wf_runs USING btree (status, created_at);

CREATE INDEX wf_waiters_topic_idx ON @NAMESPACE@.wf_waiters USING btree (topic);

CREATE TRIGGER jobs_done AFTER DELETE ON @NAMESPACE@.jobs FOR EACH ROW WHEN ((old.headers ?| ARRAY['stem-canvas'::text, 'stem-workflow'::text])) EXECUTE FUNCTION @NAMESPACE@.job_done();

CREATE TRIGGER jobs_notify AFTER INSERT ON @NAMESPACE@.jobs REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION @NAMESPACE@.notify_jobs();

CREATE TRIGGER schedules_notify AFTER INSERT OR DELETE OR UPDATE OF task, spec, kwargs, queue, priority, jitter, enabled, expires_at, misfire, misfire_grace, version ON @NAMESPACE@.schedules FOR EACH STATEMENT EXECUTE FUNCTION @NAMESPACE@.notify_schedules();

ALTER TABLE ONLY @NAMESPACE@.broadcast_fanout
    ADD CONSTRAINT broadcast_fanout_message_id_fkey FOREIGN KEY (message_id) REFERENCES @NAMESPACE@.broadcast_messages(id) ON DELETE CASCADE;

ALTER TABLE ONLY @NAMESPACE@.canvas_members
    ADD CONSTRAINT canvas_members_canvas_id_fkey FOREIGN KEY (canvas_id) REFERENCES @NAMESPACE@.canvases(id) ON DELETE CASCADE;

ALTER TABLE ONLY @NAMESPACE@.wf_runs
    ADD CONSTRAINT wf_runs_parent_run_id_fkey FOREIGN KEY (parent_run_id) REFERENCES @NAMESPACE@.wf_runs(id) ON DELETE SET NULL;

ALTER TABLE ONLY @NAMESPACE@.wf_steps
    ADD CONSTRAINT wf_steps_run_id_fkey FOREIGN KEY (run_id) REFERENCES @NAMESPACE@.wf_runs(id) ON DELETE CASCADE;

ALTER TABLE ONLY @NAMESPACE@.wf_waiters
    ADD CONSTRAINT wf_waiters_run_id_fkey FOREIGN KEY (run_id) REFERENCES @NAMESPACE@.wf_runs(id) ON DELETE CASCADE;
