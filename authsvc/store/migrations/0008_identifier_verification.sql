-- 0008: verification per identifier. An email address and a phone number are
-- proven separately (a code sent to it, a reset redeemed through it, an import
-- that says so, an operator who created the account with it); a username is
-- chosen, never proven. `verified_at` stays the account's own state: usable
-- once any identifier was proven.

ALTER TABLE users ADD COLUMN email_verified_at timestamptz,
                  ADD COLUMN phone_verified_at timestamptz;

-- Until now an account had one proof, and it covered the identifiers it had.
UPDATE users SET email_verified_at = CASE WHEN email IS NOT NULL THEN verified_at END,
                 phone_verified_at = CASE WHEN phone IS NOT NULL THEN verified_at END
 WHERE verified_at IS NOT NULL AND (email IS NOT NULL OR phone IS NOT NULL);

-- A flag without its identifier means nothing, and an identifier that changes
-- must be proven again: whoever sets one sets (or clears) its flag with it.
ALTER TABLE users
    ADD CONSTRAINT users_email_verified_has_email
        CHECK (email_verified_at IS NULL OR email IS NOT NULL),
    ADD CONSTRAINT users_phone_verified_has_phone
        CHECK (phone_verified_at IS NULL OR phone IS NOT NULL);
