-- 0007: throttle_reserve and throttle_release lock their rows in one key order
-- and touch no row they have not locked.
--
-- 0003 inserted the missing rows first (each new row is locked by its inserter
-- at once) and only then locked the existing ones in key order. A successful
-- sign-in deletes its pair's row, so concurrent sign-ins of one user from one
-- address kept re-inserting it: one reservation held the new pair row and
-- waited for the address row, another held the address row and waited for the
-- pair row, and PostgreSQL's deadlock detector killed one (SignIn answered
-- UNAVAILABLE). Now a single INSERT ... ON CONFLICT DO UPDATE ... WHERE false
-- walks the keys in order and locks each row as it comes, inserted or found
-- (DO UPDATE locks the conflicting row even when its WHERE writes nothing), so
-- every reservation takes its locks in key order.
--
-- throttle_release locked the rows that existed, in key order, and then
-- deleted the cleared keys by name: a pair row inserted meanwhile by another
-- reservation (its own attempt's slot, not this one's) was then waited for
-- out of order, and deleted. Now it changes only the rows it locked.
CREATE OR REPLACE FUNCTION throttle_reserve(checked text[], charged text[], free integer[],
                                            base float8[], cap float8[], keep float8[],
                                            at timestamptz,
                                            OUT blocked timestamptz, OUT refused integer)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO throttles AS t (key, failures, last_failure_at)
        SELECT k, 0, at FROM unnest(charged) AS k ORDER BY k
        ON CONFLICT (key) DO UPDATE SET failures = t.failures WHERE false;
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

CREATE OR REPLACE FUNCTION throttle_release(released text[], free integer[], cleared text[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    held text[];
BEGIN
    SELECT coalesce(array_agg(key), '{}') INTO held FROM (
        SELECT key FROM throttles WHERE key = ANY (released || cleared)
         ORDER BY key FOR UPDATE) AS locked;
    UPDATE throttles AS t SET failures = t.failures - 1,
           blocked_until = CASE WHEN t.failures - 1 > c.free THEN t.blocked_until END
      FROM unnest(released, free) AS c(key, free)
     WHERE t.key = c.key AND t.key = ANY (held) AND t.failures > 0;
    DELETE FROM throttles WHERE key = ANY (cleared) AND key = ANY (held);
END
$$;
