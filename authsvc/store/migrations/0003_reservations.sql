-- 0003: sign-in attempts reserve their throttle slot before any hash; sessions
-- are created only for the credentials they were derived from.

-- Bumped by every change that must end existing sign-ins (password change,
-- disabling): a session is inserted only while the version it read still holds.
ALTER TABLE users ADD COLUMN credentials_version bigint NOT NULL DEFAULT 0;

-- How often a block has refused an attempt since it began, so that a flood of
-- refused calls writes a handful of audit rows, not one each.
ALTER TABLE throttles ADD COLUMN refusals integer NOT NULL DEFAULT 0;

-- Take one attempt's slot on every charged key, atomically: refused (returning
-- the latest block in force among the checked keys, and how many attempts
-- that block has refused) before anything is counted, or counted as a failure
-- on every charged key (the tarpit arithmetic of 0002) and NULLs returned. A
-- success gives the slot back (UPDATE in store/throttles.py). Rows are locked
-- in key order, so concurrent reservations on several workers and replicas
-- queue and never deadlock.
CREATE FUNCTION throttle_reserve(checked text[], charged text[], free integer[],
                                 base float8[], cap float8[], keep float8[],
                                 at timestamptz,
                                 OUT blocked timestamptz, OUT refused integer)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO throttles (key, failures, last_failure_at)
        SELECT k, 0, at FROM unnest(charged) AS k ORDER BY k
        ON CONFLICT (key) DO NOTHING;
    PERFORM 1 FROM throttles WHERE key = ANY (charged) ORDER BY key FOR UPDATE;
    WITH refusing AS (
        UPDATE throttles t SET refusals = t.refusals + 1
         WHERE t.key = ANY (checked) AND t.blocked_until > at
        RETURNING t.blocked_until, t.refusals)
    SELECT max(r.blocked_until), max(r.refusals) INTO blocked, refused FROM refusing r;
    IF blocked IS NOT NULL THEN
        RETURN;
    END IF;
    UPDATE throttles AS t SET
        failures = n.failures,
        last_failure_at = at,
        refusals = CASE WHEN n.failures > n.free THEN 0 ELSE t.refusals END,
        blocked_until = CASE
            WHEN n.failures > n.free THEN at + make_interval(
                secs => least(n.cap, n.base * power(2, n.failures - 1 - n.free)))
            WHEN n.stale THEN NULL
            ELSE t.blocked_until END
      FROM (SELECT c.key, c.free, c.base, c.cap, s.stale,
                   CASE WHEN s.stale THEN 1 ELSE s.failures + 1 END AS failures
              FROM unnest(charged, free, base, cap, keep) AS c(key, free, base, cap, keep)
              JOIN LATERAL (
                  SELECT r.failures, r.last_failure_at < at - make_interval(secs => c.keep)
                         OR r.failures = 0 AS stale
                    FROM throttles r WHERE r.key = c.key) s ON true) AS n
     WHERE t.key = n.key;
END
$$;

-- Give back the slots a successful attempt reserved: one failure fewer on each
-- released key (and no block unless the failures left still exceed its free
-- ones), and the cleared keys (the pair's and the device's) start afresh.
-- Locks in key order, as throttle_reserve does, so the two never deadlock.
CREATE FUNCTION throttle_release(released text[], free integer[], cleared text[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM throttles WHERE key = ANY (released || cleared) ORDER BY key FOR UPDATE;
    UPDATE throttles AS t SET failures = t.failures - 1,
           blocked_until = CASE WHEN t.failures - 1 > c.free THEN t.blocked_until END
      FROM unnest(released, free) AS c(key, free)
     WHERE t.key = c.key AND t.failures > 0;
    DELETE FROM throttles WHERE key = ANY (cleared);
END
$$;
