-- 0003: sign-in attempts reserve their throttle slot before any hash; sessions
-- are created only for the credentials they were derived from.

-- Bumped by every change that must end existing sign-ins (password change,
-- disabling): a session is inserted only while the version it read still holds.
ALTER TABLE users ADD COLUMN credentials_version bigint NOT NULL DEFAULT 0;

-- Take one attempt's slot on every charged key, atomically: refused (returning
-- the latest block in force among the checked keys) before anything is
-- counted, or counted as a failure on every charged key (the tarpit
-- arithmetic of 0002) and NULL returned. A success gives the slot back with
-- throttle_release. Rows are locked in key order, so concurrent reservations
-- on several workers and replicas queue and never deadlock.
CREATE FUNCTION throttle_reserve(checked text[], charged text[], free integer[],
                                 base float8[], cap float8[], keep float8[],
                                 at timestamptz) RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    blocked timestamptz;
BEGIN
    INSERT INTO throttles (key, failures, last_failure_at)
        SELECT k, 0, at FROM unnest(charged) AS k ORDER BY k
        ON CONFLICT (key) DO NOTHING;
    PERFORM 1 FROM throttles WHERE key = ANY (charged) ORDER BY key FOR UPDATE;
    SELECT max(t.blocked_until) INTO blocked FROM throttles t
     WHERE t.key = ANY (checked) AND t.blocked_until > at;
    IF blocked IS NOT NULL THEN
        RETURN blocked;
    END IF;
    UPDATE throttles AS t SET
        failures = n.failures,
        last_failure_at = at,
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
    RETURN NULL;
END
$$;
