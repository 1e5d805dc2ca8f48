-- The lock store: owner-checked, expiring locks with fencing tokens. {ns} is the namespace schema.

-- name: lock_acquire
-- Take a lock that is free, expired, or already ours; every acquisition gets a new, larger token.
INSERT INTO {ns}.locks AS l (key, owner, token, acquired_at, expires_at)
VALUES (%(key)s, %(owner)s, nextval('{ns}.lock_tokens'), now(),
        now() + make_interval(secs => %(ttl)s))
ON CONFLICT (key) DO UPDATE
SET owner = excluded.owner, token = excluded.token, acquired_at = excluded.acquired_at,
    expires_at = excluded.expires_at
WHERE l.expires_at <= now() OR l.owner = excluded.owner
RETURNING key, owner, token, expires_at;

-- name: lock_renew
-- Push the expiry of a lock we still hold (same owner and token: nobody took it over since).
UPDATE {ns}.locks
SET expires_at = now() + make_interval(secs => %(ttl)s)
WHERE key = %(key)s AND owner = %(owner)s AND token = %(token)s
RETURNING key, owner, token, expires_at;

-- name: lock_release
-- Give a lock back; only its holder (owner and token) can.
DELETE FROM {ns}.locks
WHERE key = %(key)s AND owner = %(owner)s AND token = %(token)s
RETURNING key;

-- name: lock_get
-- Who holds a lock, and until when (expired rows stay until the key is taken again).
SELECT key, owner, token, acquired_at, expires_at, expires_at > now() AS held
FROM {ns}.locks
WHERE key = %(key)s;
