-- 0010: sign-in with another identity provider (OpenID Connect, OAuth 2.0).

-- A provider account linked to a user. The provider's subject is the key,
-- never its e-mail (which the provider may reassign); `email` is what the
-- provider said at link time, for display only.
CREATE TABLE identities (
    provider   text NOT NULL,
    subject    text NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, subject)
);
CREATE INDEX identities_user_id ON identities (user_id);

-- The sign-in (or link) flows whose callback has arrived. A flow is not stored
-- while it waits: it travels encrypted in its `state` (Start writes nothing).
-- Finish inserts the hash of the state here, only while `expires_at` (carried
-- in the state) is ahead of the database's clock, so a state answers once;
-- housekeeping deletes rows past their expiry, which alone refuses them then.
CREATE TABLE federation_spent_flows (
    state_hash bytea PRIMARY KEY CHECK (length(state_hash) = 32),
    expires_at timestamptz NOT NULL
);
CREATE INDEX federation_spent_flows_expires_at ON federation_spent_flows (expires_at);

-- A user who signs in only through providers has no password.
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;
-- Nor, when the provider asserted no verified e-mail, any identifier of its own.
ALTER TABLE users DROP CONSTRAINT users_check,
    ADD CONSTRAINT users_has_a_way_in
        CHECK (num_nonnulls(email, phone, username) >= 1 OR password_hash IS NULL);

-- What the first step of a sign-in waiting for its second factor proved: its amr
-- (a password, or a provider), carried into the session's.
ALTER TABLE mfa_challenges ADD COLUMN first_factor text NOT NULL DEFAULT 'pwd'
    CHECK (first_factor IN ('pwd', 'fed'));
