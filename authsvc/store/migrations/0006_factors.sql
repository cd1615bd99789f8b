-- 0006: second factors (authenticator apps, recovery codes), the sign-ins that
-- wait for one, and how each session was authenticated (amr, auth_time).

-- One authenticator app per user. secret is the TOTP key encrypted under the
-- key-encryption key (domain/keycrypto.py, the user id as associated data);
-- active once confirmed_at is set. last_step is the last time step whose code
-- was accepted: a code is taken only for a later step (no replay).
CREATE TABLE totp_factors (
    user_id      uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret       bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    confirmed_at timestamptz,
    last_step    bigint
);

-- Recovery codes, stored as HMACs; used_at set on their one use.
CREATE TABLE recovery_codes (
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash bytea NOT NULL,
    used_at   timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- A sign-in whose password was right, waiting for its second factor. The
-- client holds mfa_token; only its SHA-256 is here. Spent by its one success,
-- dead after expires_at or too many wrong codes.
CREATE TABLE mfa_challenges (
    token_hash          bytea PRIMARY KEY,
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credentials_version bigint NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    attempts            integer NOT NULL DEFAULT 0,
    spent_at            timestamptz
);
CREATE INDEX mfa_challenges_expires_at ON mfa_challenges (expires_at);

-- How the session's user authenticated (RFC 8176 amr values) and when: every
-- access token of the session carries them, refreshed ones too.
ALTER TABLE sessions
    ADD COLUMN amr       text[] NOT NULL DEFAULT '{pwd}',
    ADD COLUMN auth_time timestamptz;

-- refresh_session (0004) with the session's amr and the age of its sign-in
-- (seconds by the database's clock; the token's auth_time is the replica's
-- now minus that age, so a replica's skew moves it no more than iat) among its
-- results; the logic is unchanged.
DROP FUNCTION refresh_session(uuid, bigint, float8, float8, text, text, text, text,
                              boolean);
CREATE FUNCTION refresh_session(sid uuid, presented bigint, grace float8, idle float8,
                                throttle text, addr text, agent text, channel text,
                                audit_success boolean,
                                OUT outcome text, OUT user_id uuid, OUT scopes text[],
                                OUT counter bigint, OUT expires_in float8,
                                OUT retry_after float8, OUT amr text[],
                                OUT auth_age float8)
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
    amr := s.amr;
    auth_age := extract(epoch FROM now() - coalesce(s.auth_time, s.created_at));
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

-- Passkeys (WebAuthn credentials). sign_count is the authenticator's counter as
-- last seen: an assertion must carry a larger one (unless both are 0), or the
-- credential may have been cloned.
CREATE TABLE webauthn_credentials (
    id           bytea PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    public_key   bytea NOT NULL,
    sign_count   bigint NOT NULL,
    synced       boolean NOT NULL,
    name         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);
CREATE INDEX webauthn_credentials_user_id ON webauthn_credentials (user_id);

-- A WebAuthn ceremony in progress: its challenge, what it is for, and (for a
-- second factor) the sign-in challenge it completes. Single use, short-lived.
CREATE TABLE webauthn_ceremonies (
    id_hash    bytea PRIMARY KEY,
    purpose    text NOT NULL CHECK (purpose IN ('register', 'second_factor', 'sign_in')),
    user_id    uuid REFERENCES users (id) ON DELETE CASCADE,
    mfa_hash   bytea,
    challenge  bytea NOT NULL,
    expires_at timestamptz NOT NULL,
    spent_at   timestamptz
);
CREATE INDEX webauthn_ceremonies_expires_at ON webauthn_ceremonies (expires_at);
