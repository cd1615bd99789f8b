-- 0001: users, sessions, refresh tokens, signing keys and the audit log.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text UNIQUE CHECK (email = lower(email)),
    phone         text UNIQUE CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
    username      text UNIQUE CHECK (username = lower(username)),
    password_hash text NOT NULL,
    scopes        text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    disabled_at   timestamptz,
    CHECK (num_nonnulls(email, phone, username) >= 1)
);

CREATE TABLE sessions (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scopes        text[] NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,       -- absolute lifetime
    last_used_at  timestamptz NOT NULL,       -- idle lifetime counts from here
    revoked_at    timestamptz,
    revoke_reason text,
    client_addr   text,
    user_agent    text
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Refresh tokens are stored only as SHA-256 hashes. Each use spends the row
-- (spent_at) and inserts its successor (parent_id = the spent row).
CREATE TABLE refresh_tokens (
    id          bigserial PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    parent_id   bigint REFERENCES refresh_tokens (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    spent_at    timestamptz
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);
-- One successor per token: a rotation can never fork a session.
CREATE UNIQUE INDEX refresh_tokens_one_successor ON refresh_tokens (parent_id);

CREATE TABLE signing_keys (
    kid           text PRIMARY KEY,
    alg           text NOT NULL CHECK (alg IN ('ES256', 'EdDSA', 'RS256')),
    public_jwk    jsonb NOT NULL,
    private_key   bytea NOT NULL,             -- AES-256-GCM under the key-encryption key
    created_at    timestamptz NOT NULL,
    activates_at  timestamptz NOT NULL,       -- signs from here
    retired_at    timestamptz,                -- stops signing here
    publish_until timestamptz                 -- leaves the JWKS here
);

CREATE TABLE auth_events (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    kind        text NOT NULL,
    reason      text,
    user_id     uuid,
    session_id  uuid,
    client_addr text,
    user_agent  text
);
CREATE INDEX auth_events_at ON auth_events (at);
CREATE INDEX auth_events_user_id ON auth_events (user_id, at);
