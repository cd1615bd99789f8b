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

-- A sign-in (or link) flow between its start and the provider's callback:
-- single-use (deleted when spent) and expiring by the database's clock. Only
-- hashes of the state and of the flow_id (the starter's binding: the gateway's
-- cookie or the app's memory) are kept. `verifier` is the PKCE code verifier
-- authsvc generated, or NULL when the app sent its own challenge.
CREATE TABLE federation_flows (
    state_hash   bytea PRIMARY KEY CHECK (length(state_hash) = 32),
    binding_hash bytea NOT NULL CHECK (length(binding_hash) = 32),
    provider     text NOT NULL,
    nonce        text NOT NULL,
    verifier     text,
    challenge    text NOT NULL,
    redirect_uri text NOT NULL,
    redirect_to  text,
    link_user_id uuid REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX federation_flows_expires_at ON federation_flows (expires_at);

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
