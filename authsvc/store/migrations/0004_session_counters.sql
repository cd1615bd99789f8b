-- 0004: counter-based refresh tokens, and the database's clock for stored times.
--
-- A refresh token now carries its session id and a counter, authenticated by
-- an HMAC (domain/refresh_tokens.py); the session row keeps only the current
-- counter and when it last moved. Storage grows with sessions, not with
-- refreshes. refresh_tokens is only read from now on (tokens issued before
-- this migration keep working until their sessions end); a later release
-- drops it.
ALTER TABLE sessions
    ADD COLUMN refresh_counter  bigint NOT NULL DEFAULT 0,
    ADD COLUMN refresh_moved_at timestamptz;

-- A session from before this migration: its last rotation, so a legacy token
-- spent just before the upgrade still gets its grace interval.
UPDATE sessions s SET refresh_moved_at = t.spent
  FROM (SELECT session_id, max(spent_at) AS spent FROM refresh_tokens
         GROUP BY session_id) t
 WHERE t.session_id = s.id;

-- Every stored time is the database's: replicas' clocks disagree.
ALTER TABLE sessions ALTER COLUMN created_at SET DEFAULT now(),
                     ALTER COLUMN last_used_at SET DEFAULT now();
ALTER TABLE auth_events ALTER COLUMN at SET DEFAULT now();

-- Pruning finds ended sessions by their absolute end (and revoked ones by
-- sessions_revoked_at). Nothing a refresh writes (counter, last move, last use)
-- is indexed, so a refresh is a HOT update that writes no index entry.
CREATE INDEX sessions_expires_at ON sessions (expires_at);
-- Room on each page for the updated row, so those HOT updates stay on the page.
ALTER TABLE sessions SET (fillfactor = 80);

-- Revoke sessions (the given ids and, with owner set, every session of that
-- user), each with its session.revoked audit row and a NOTIFY on channel, in
-- the caller's transaction. The one revocation statement: Revoke, refresh-token
-- reuse, disabling, password changes and administrators all come here.
CREATE FUNCTION revoke_sessions(ids uuid[], owner uuid, why text, addr text,
                                agent text, channel text)
RETURNS SETOF uuid LANGUAGE sql AS $$
    WITH revoked AS (
        UPDATE sessions SET revoked_at = now(), revoke_reason = why
         WHERE (id = ANY (ids) OR user_id = owner) AND revoked_at IS NULL
        RETURNING id, user_id),
    audited AS (
        INSERT INTO auth_events (at, kind, reason, user_id, session_id, client_addr,
                                 user_agent)
        SELECT now(), 'session.revoked', why, user_id, id, addr, agent FROM revoked)
    SELECT id FROM revoked, pg_notify(channel, id::text)
$$;

-- One refresh, decided and written in one statement under the session's row
-- lock, by the database's clock:
--   throttled  the client address's refresh throttle is blocking (retry_after);
--   unknown    no such session, or a counter this session never reached;
--   ended      revoked, expired, idle too long, or its user disabled;
--   rotated    presented = the current counter: the counter moves on;
--   repeated   presented = the previous counter within the grace interval after
--              it moved: the caller answers with the identical successor again;
--   reused     any other earlier counter: the session is revoked.
-- counter is the session's counter afterwards (the successor's). Every outcome
-- but throttled and unknown is audited, a successful one only when audit_success.
CREATE FUNCTION refresh_session(sid uuid, presented bigint, grace float8, idle float8,
                                throttle text, addr text, agent text, channel text,
                                audit_success boolean,
                                OUT outcome text, OUT user_id uuid, OUT scopes text[],
                                OUT counter bigint, OUT expires_in float8,
                                OUT retry_after float8)
LANGUAGE plpgsql AS $$
DECLARE
    s sessions%ROWTYPE;
    disabled timestamptz;
    kind text;
BEGIN
    SELECT extract(epoch FROM max(t.blocked_until) - now()) INTO retry_after
      FROM throttles t WHERE t.key = throttle AND t.blocked_until > now();
    IF retry_after IS NOT NULL THEN
        outcome := 'throttled';
        RETURN;
    END IF;
    SELECT * INTO s FROM sessions WHERE id = sid FOR UPDATE;
    IF NOT FOUND OR presented > s.refresh_counter THEN
        outcome := 'unknown';
        RETURN;
    END IF;
    SELECT u.scopes, u.disabled_at INTO scopes, disabled FROM users u WHERE u.id = s.user_id;
    user_id := s.user_id;
    counter := s.refresh_counter;
    expires_in := extract(epoch FROM s.expires_at - now());
    IF s.revoked_at IS NOT NULL OR disabled IS NOT NULL OR now() >= s.expires_at
       OR now() >= s.last_used_at + make_interval(secs => idle) THEN
        outcome := 'ended';
        kind := 'refresh.failure';
    ELSIF presented = s.refresh_counter THEN
        counter := presented + 1;
        UPDATE sessions SET refresh_counter = counter, refresh_moved_at = now(),
                            last_used_at = greatest(last_used_at, now())
         WHERE id = sid;
        outcome := 'rotated';
        kind := 'refresh.success';
    ELSIF presented = s.refresh_counter - 1
          AND now() <= s.refresh_moved_at + make_interval(secs => grace) THEN
        UPDATE sessions SET last_used_at = greatest(last_used_at, now()) WHERE id = sid;
        outcome := 'repeated';
        kind := 'refresh.success';
    ELSE
        outcome := 'reused';
        kind := 'refresh.reuse_detected';
    END IF;
    IF audit_success OR kind <> 'refresh.success' THEN
        INSERT INTO auth_events (at, kind, reason, user_id, session_id, client_addr,
                                 user_agent)
        VALUES (now(), kind, CASE WHEN outcome = 'ended' THEN 'session_ended' END,
                s.user_id, sid, addr, agent);
    END IF;
    IF outcome = 'reused' THEN
        PERFORM revoke_sessions(ARRAY[sid], NULL, 'refresh_token_reused', addr, agent,
                                channel);
    END IF;
END
$$;
