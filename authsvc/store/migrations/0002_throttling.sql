-- 0002: sign-in and refresh throttling (exponential tarpit) and trusted clients.

-- One row per throttled key: an HMAC of the scope and the identifier and/or
-- client address, so no identifier (or password typed into one) is stored.
CREATE TABLE throttles (
    key             text PRIMARY KEY,
    failures        integer NOT NULL,
    last_failure_at timestamptz NOT NULL,
    blocked_until   timestamptz
);
CREATE INDEX throttles_last_failure_at ON throttles (last_failure_at);

-- An (identifier, client address) pair that signed in successfully recently:
-- the per-identifier tarpit does not apply to it, so an attacker elsewhere
-- cannot lock the real user out.
CREATE TABLE trusted_clients (
    key   text PRIMARY KEY,
    until timestamptz NOT NULL
);
