-- 0005: accounts people run themselves: verification state, one-time codes and the outbox.

-- When the account's identifier was proven (NULL: a verify-mode sign-up that has
-- not been verified yet). Accounts an operator creates count as verified.
ALTER TABLE users ADD COLUMN verified_at timestamptz DEFAULT now();

-- At most one live code per user and purpose: a new code replaces (voids) the
-- old one. Only an HMAC of the code is kept (key derived from the
-- key-encryption key). Expiry is judged by the database's clock; a code is
-- dead after `failures` reaches the limit, and deleted when used.
CREATE TABLE account_codes (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('verify', 'reset')),
    code_hash  bytea NOT NULL CHECK (length(code_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    failures   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, purpose)
);
CREATE INDEX account_codes_expires_at ON account_codes (expires_at);

-- Messages to send, written in the transaction of the change that causes them
-- and sent by every worker's delivery loop: a row is claimed with a lease
-- (FOR UPDATE SKIP LOCKED), so replicas never send one message twice in normal
-- operation, and a crashed sender's lease runs out and another sends it.
-- The payload (which holds the code) is encrypted under a key derived from the
-- key-encryption key and wiped once the message is sent.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('email', 'phone')),
    recipient       text NOT NULL,
    payload         bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    leased_until    timestamptz,
    sent_at         timestamptz,
    failed_at       timestamptz,
    last_error      text
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;
