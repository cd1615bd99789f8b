"""SQL for provider identities and the spent flows of signing in with a provider."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class Identity:
    provider: str
    subject: str
    email: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Owner:
    """The user an identity signs in, with what a sign-in checks."""

    user_id: str
    credentials_version: int
    disabled: bool


async def spend_flow(conn: asyncpg.Connection, state_hash: bytes, expires_at: int) -> bool:
    """Record the flow of ``state_hash`` as spent (one statement: of two callbacks with
    the same state, one gets it); False when it was spent before or has expired by the
    database's clock (``expires_at``: Unix seconds, as its state carries it)."""
    return bool(await conn.fetchval(
        "INSERT INTO federation_spent_flows (state_hash, expires_at)"
        " SELECT $1, to_timestamp($2) WHERE to_timestamp($2) > now()"
        " ON CONFLICT (state_hash) DO NOTHING RETURNING true", state_hash, float(expires_at)))


async def forget_spent_flows(conn: asyncpg.Connection) -> int:
    """Delete spent flows past their expiry: an expired state is refused by its expiry
    alone, so its row has nothing left to refuse."""
    result = await conn.execute("DELETE FROM federation_spent_flows WHERE expires_at <= now()")
    return int(result.split()[-1])


async def hold_user(conn: asyncpg.Connection, user_id: str) -> bool:
    """In a link's transaction: whether the user still exists, kept so until it ends
    (a key-share lock: a concurrent delete waits, other updates of the row do not)."""
    return await conn.fetchval("SELECT true FROM users WHERE id = $1 FOR KEY SHARE",
                               uuid.UUID(user_id)) is not None


async def owner(conn: asyncpg.Connection, provider: str, subject: str) -> Owner | None:
    """The user ``subject`` at ``provider`` signs in (one read by the primary key)."""
    row = await conn.fetchrow(
        "SELECT u.id, u.credentials_version, u.disabled_at IS NOT NULL AS disabled"
        " FROM identities i JOIN users u ON u.id = i.user_id"
        " WHERE i.provider = $1 AND i.subject = $2", provider, subject)
    return None if row is None else Owner(str(row["id"]), row["credentials_version"],
                                          row["disabled"])


async def lock_identity(conn: asyncpg.Connection, provider: str, subject: str) -> None:
    """In a first sign-in's transaction: first sign-ins of one identity queue here (a
    transaction-level advisory lock on its key), so two tabs create one user, not two."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))",
                       provider, subject)


async def user_by_email(conn: asyncpg.Connection, email: str) -> tuple[str, bool] | None:
    """(user id, whether that e-mail is verified on the account) of ``email``'s owner."""
    row = await conn.fetchrow(
        "SELECT id, email_verified_at IS NOT NULL AS verified FROM users WHERE email = $1",
        email)
    return None if row is None else (str(row["id"]), row["verified"])


async def create_user(conn: asyncpg.Connection, email: str | None) -> str | None:
    """A user who signs in with a provider only: no password; the e-mail (verified,
    as the provider asserted) when given. None when the e-mail was taken meanwhile."""
    found = await conn.fetchval(
        "INSERT INTO users (id, email, password_hash, created_at, updated_at, verified_at,"
        " email_verified_at) VALUES ($1, $2, NULL, now(), now(), now(),"
        " CASE WHEN $2::text IS NOT NULL THEN now() END)"
        " ON CONFLICT DO NOTHING RETURNING id", uuid.uuid4(), email)
    return None if found is None else str(found)


async def link(conn: asyncpg.Connection, provider: str, subject: str, user_id: str,
               email: str | None) -> str | None:
    """Link the identity to ``user_id``; answers the user it belongs to now (another
    one when it was linked already: nothing is changed then; None when a concurrent
    link won and is not visible to this statement yet)."""
    found = await conn.fetchval(
        "WITH added AS (INSERT INTO identities (provider, subject, user_id, email)"
        "  VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING user_id)"
        " SELECT user_id FROM added UNION ALL"
        " SELECT user_id FROM identities WHERE provider = $1 AND subject = $2 LIMIT 1",
        provider, subject, uuid.UUID(user_id), email)
    return None if found is None else str(found)


async def of_user(conn: asyncpg.Connection, user_id: str) -> list[Identity]:
    rows = await conn.fetch(
        "SELECT provider, subject, email, created_at FROM identities WHERE user_id = $1"
        " ORDER BY created_at, provider, subject", uuid.UUID(user_id))
    return [Identity(r["provider"], r["subject"], r["email"], r["created_at"]) for r in rows]


async def unlink_unless_last(conn: asyncpg.Connection, user_id: str, provider: str,
                             subject: str, *, passkeys_sign_in: bool) -> str:
    """Remove the identity unless it is the user's last way to sign in (no password,
    no other identity, and no passkey where passkeys sign in alone): "removed", "last"
    or "missing". The user's row is
    locked first, so two unlinks of a user's last two identities queue and the
    second sees the first's result."""
    await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", uuid.UUID(user_id))
    row = await conn.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM identities WHERE user_id = $1 AND provider = $2"
        "               AND subject = $3) AS present,"
        " (SELECT password_hash IS NOT NULL FROM users WHERE id = $1)"
        " OR ($4 AND EXISTS (SELECT 1 FROM webauthn_credentials WHERE user_id = $1))"
        " OR EXISTS (SELECT 1 FROM identities WHERE user_id = $1"
        "            AND (provider, subject) <> ($2, $3)) AS other_way",
        uuid.UUID(user_id), provider, subject, passkeys_sign_in)
    if not row["present"]:
        return "missing"
    if not row["other_way"]:
        return "last"
    await conn.execute("DELETE FROM identities WHERE user_id = $1 AND provider = $2"
                       " AND subject = $3", uuid.UUID(user_id), provider, subject)
    return "removed"
