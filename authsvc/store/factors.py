"""SQL for second factors and the sign-ins waiting for one (migration 0006).

Every decision about time is the database's: a TOTP code is checked against
the time step of ``now()`` read under the factor's row lock, and a code is
accepted only for a step later than the last one accepted (a conditional
UPDATE), so the same code cannot pass twice, on any replica.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

TOTP_PERIOD = 30


@dataclass(frozen=True, slots=True)
class TotpRow:
    secret: bytes
    last_step: int | None
    step: int  # the time step of the database's now()


@dataclass(frozen=True, slots=True)
class Challenge:
    user_id: str
    credentials_version: int
    first_factor: str = "pwd"  # the amr of the sign-in's first step ("fed": a provider)


async def save_pending_totp(conn: asyncpg.Connection, user_id: str, secret: bytes) -> bool:
    """Store a new, unconfirmed secret (replacing an unconfirmed one); False when the
    user already has a confirmed one, which stays."""
    return bool(await conn.fetchval(
        "INSERT INTO totp_factors (user_id, secret) VALUES ($1, $2)"
        " ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = now(),"
        "   last_step = NULL WHERE totp_factors.confirmed_at IS NULL RETURNING true",
        uuid.UUID(user_id), secret))


async def lock_totp(conn: asyncpg.Connection, user_id: str, *, confirmed: bool,
                    ) -> TotpRow | None:
    """The user's (confirmed or pending) secret, locked for this transaction, with the
    time step of the database's clock."""
    row = await conn.fetchrow(
        "SELECT secret, last_step, floor(extract(epoch FROM now()) / $3)::bigint AS step"
        "  FROM totp_factors WHERE user_id = $1 AND (confirmed_at IS NOT NULL) = $2"
        "   FOR UPDATE", uuid.UUID(user_id), confirmed, TOTP_PERIOD)
    if row is None:
        return None
    return TotpRow(bytes(row["secret"]), row["last_step"], row["step"])


async def lock_pending_totp(conn: asyncpg.Connection, user_id: str) -> None:
    """Lock the user's unconfirmed secret, if any, before a passkey registration touches
    its ceremony: both ways of adding a factor then lock in the same order (secret,
    then ceremonies), so they cannot deadlock when one ends the other."""
    await conn.execute("SELECT 1 FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NULL"
                       " FOR UPDATE", uuid.UUID(user_id))


async def end_pending_enrolments(conn: asyncpg.Connection, user_id: str) -> None:
    """A factor became active: the user's unconfirmed secret and unfinished passkey
    registrations end, so none begun under the weaker state is finished after it."""
    await conn.execute(
        "WITH secret AS (DELETE FROM totp_factors WHERE user_id = $1"
        "                 AND confirmed_at IS NULL)"
        " DELETE FROM webauthn_ceremonies WHERE user_id = $1 AND purpose = 'register'",
        uuid.UUID(user_id))


async def accept_step(conn: asyncpg.Connection, user_id: str, step: int) -> bool:
    """Record that the code of ``step`` was used (and confirm a pending secret); False
    when a code of this step or a later one was already accepted."""
    return bool(await conn.fetchval(
        "UPDATE totp_factors SET last_step = $2, confirmed_at = coalesce(confirmed_at, now())"
        " WHERE user_id = $1 AND (last_step IS NULL OR last_step < $2) RETURNING true",
        uuid.UUID(user_id), step))


async def replace_recovery_codes(conn: asyncpg.Connection, user_id: str,
                                 hashes: list[bytes]) -> None:
    await conn.execute("DELETE FROM recovery_codes WHERE user_id = $1", uuid.UUID(user_id))
    await conn.execute(
        "INSERT INTO recovery_codes (user_id, code_hash) SELECT $1, h FROM unnest($2::bytea[]) h",
        uuid.UUID(user_id), hashes)


async def use_recovery_code(conn: asyncpg.Connection, user_id: str, code_hash: bytes) -> bool:
    """Spend the code; False when there is no such unused code."""
    return bool(await conn.fetchval(
        "UPDATE recovery_codes SET used_at = now()"
        " WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL RETURNING true",
        uuid.UUID(user_id), code_hash))


@dataclass(frozen=True, slots=True)
class Summary:
    totp: bool  # a confirmed authenticator app
    recovery_codes: int  # unused
    passkeys: int

    @property
    def any(self) -> bool:
        """Whether the user has a second factor (recovery codes only back one up)."""
        return self.totp or self.passkeys > 0


async def summary(conn: asyncpg.Connection, user_id: str) -> Summary:
    row = await conn.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM totp_factors WHERE user_id = $1"
        "               AND confirmed_at IS NOT NULL) AS totp,"
        "       (SELECT count(*) FROM recovery_codes WHERE user_id = $1"
        "         AND used_at IS NULL) AS codes,"
        "       (SELECT count(*) FROM webauthn_credentials WHERE user_id = $1) AS passkeys",
        uuid.UUID(user_id))
    return Summary(bool(row["totp"]), int(row["codes"]), int(row["passkeys"]))


async def remove_totp(conn: asyncpg.Connection, user_id: str) -> bool:
    """Delete the user's TOTP factor (pending or confirmed); False when there was none."""
    result = await conn.execute("DELETE FROM totp_factors WHERE user_id = $1",
                                uuid.UUID(user_id))
    return bool(result != "DELETE 0")


async def remove_recovery_codes(conn: asyncpg.Connection, user_id: str) -> None:
    await conn.execute("DELETE FROM recovery_codes WHERE user_id = $1", uuid.UUID(user_id))


async def create_challenge(conn: asyncpg.Connection, token_hash: bytes, user_id: str,
                           credentials_version: int, ttl: float, first_factor: str = "pwd",
                           ) -> None:
    await conn.execute(
        "INSERT INTO mfa_challenges (token_hash, user_id, credentials_version, expires_at,"
        " first_factor) VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5)",
        token_hash, uuid.UUID(user_id), credentials_version, float(ttl), first_factor)


async def lock_challenge(conn: asyncpg.Connection, token_hash: bytes, max_attempts: int,
                         ) -> Challenge | None:
    """The live challenge (not spent, not expired by the database's clock, not out of
    attempts), locked so concurrent completions of it queue."""
    row = await conn.fetchrow(
        "SELECT user_id, credentials_version, first_factor FROM mfa_challenges"
        " WHERE token_hash = $1 AND spent_at IS NULL AND expires_at > now()"
        "   AND attempts < $2 FOR UPDATE", token_hash, max_attempts)
    return None if row is None else Challenge(str(row["user_id"]), row["credentials_version"],
                                              row["first_factor"])


async def live_challenge_user(conn: asyncpg.Connection, token_hash: bytes,
                              max_attempts: int) -> str | None:
    """The user of a live challenge, read without a lock (to start a passkey
    assertion for it); None when there is none."""
    found = await conn.fetchval(
        "SELECT user_id FROM mfa_challenges WHERE token_hash = $1 AND spent_at IS NULL"
        " AND expires_at > now() AND attempts < $2", token_hash, max_attempts)
    return None if found is None else str(found)


async def challenge_failed(conn: asyncpg.Connection, token_hash: bytes) -> None:
    await conn.execute("UPDATE mfa_challenges SET attempts = attempts + 1"
                       " WHERE token_hash = $1", token_hash)


async def spend_challenge(conn: asyncpg.Connection, token_hash: bytes) -> None:
    await conn.execute("UPDATE mfa_challenges SET spent_at = now() WHERE token_hash = $1",
                       token_hash)


async def prune_challenges(conn: asyncpg.Connection, batch: int) -> int:
    """Delete at most ``batch`` expired sign-in challenges and at most ``batch`` expired
    WebAuthn ceremonies (an expired one can no longer be taken, spent or not); how
    many in all."""
    challenges = await conn.execute(
        "DELETE FROM mfa_challenges WHERE token_hash IN (SELECT token_hash"
        " FROM mfa_challenges WHERE expires_at < now() LIMIT $1)", batch)
    ceremonies = await conn.execute(
        "DELETE FROM webauthn_ceremonies WHERE id_hash IN (SELECT id_hash"
        " FROM webauthn_ceremonies WHERE expires_at < now() LIMIT $1)", batch)
    return int(challenges.split()[-1]) + int(ceremonies.split()[-1])
