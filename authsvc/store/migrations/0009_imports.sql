-- 0009: users brought from another system: their id there, and how many still carry its hash.

-- The user's id in the system it was imported from ("kc:…", "firebase:…"), kept
-- for reference and as the import's idempotency key: importing the same line
-- again finds it taken and skips it.
ALTER TABLE users ADD COLUMN external_id text UNIQUE;

-- Users whose password_hash is still the imported one ('$authsvc-import$…',
-- domain/accounts/foreign_hashes.py) until their first sign-in replaces it: the
-- count behind `authsvc users import --status` and authsvc_users_foreign_hash,
-- read from this index alone.
CREATE INDEX users_foreign_hash ON users (id) WHERE password_hash LIKE '$authsvc-import$%';
