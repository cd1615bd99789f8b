"""SQL for importing users in batches (migration 0009).

A batch is copied into a temporary table (``COPY``, one round trip), then one
statement inserts every row whose external id and identifiers are all free
(``INSERT … ON CONFLICT DO NOTHING``), with each created user's audit row and
imported TOTP factor; a second statement says why each other row was not
created. Whatever the caller's transaction commits is complete: a batch is
there whole or not at all, so an import killed mid-way is finished by running
it again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

FOREIGN = "$authsvc-import$%"  # LIKE pattern of an imported hash (see users_foreign_hash)
_COLUMNS = ("ord", "id", "external_id", "email", "phone", "username", "password_hash",
            "scopes", "disabled", "created_at", "email_verified", "phone_verified", "totp")


@dataclass(frozen=True, slots=True)
class BatchRow:
    ord: int  # the line number, to report on
    id: uuid.UUID
    external_id: str
    email: str | None
    phone: str | None
    username: str | None
    password_hash: str | None  # None: no password (NULL, as for provider-only users)
    scopes: list[str]
    disabled: bool
    created_at: datetime | None
    email_verified: bool
    phone_verified: bool
    totp: bytes | None  # sealed under the user id, as store.factors keeps it


@dataclass(frozen=True, slots=True)
class NotCreated:
    ord: int
    external_id: str
    taken: str | None  # None: already imported; else the identifier another user has


async def prepare(conn: asyncpg.Connection) -> None:
    """The session's batch table (created once per connection, emptied by each commit
    or rollback)."""
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS import_batch (ord bigint, id uuid, external_id text,"
        " email text, phone text, username text, password_hash text, scopes text[],"
        " disabled boolean, created_at timestamptz, email_verified boolean,"
        " phone_verified boolean, totp bytea) ON COMMIT DELETE ROWS")


async def insert_batch(conn: asyncpg.Connection, rows: list[BatchRow],
                       ) -> tuple[set[int], list[NotCreated]]:
    """Create the batch's users that conflict with nobody; the lines created, and why
    each other one was not. Inside the caller's transaction."""
    await conn.execute("TRUNCATE import_batch")
    await conn.copy_records_to_table(
        "import_batch", columns=_COLUMNS,
        records=[tuple(getattr(row, c) for c in _COLUMNS) for row in rows])
    created = await conn.fetch(
        "WITH created AS ("
        "  INSERT INTO users (id, external_id, email, phone, username, password_hash, scopes,"
        "                     created_at, updated_at, disabled_at, verified_at,"
        "                     email_verified_at, phone_verified_at)"
        "  SELECT id, external_id, email, phone, username, password_hash, scopes,"
        "         coalesce(created_at, now()), now(), CASE WHEN disabled THEN now() END,"
        "         now(), CASE WHEN email_verified THEN now() END,"
        "         CASE WHEN phone_verified THEN now() END"
        "    FROM import_batch ORDER BY ord"
        "  ON CONFLICT DO NOTHING RETURNING id),"
        " factors AS ("
        "  INSERT INTO totp_factors (user_id, secret, confirmed_at)"
        "  SELECT b.id, b.totp, now() FROM import_batch b JOIN created c USING (id)"
        "   WHERE b.totp IS NOT NULL),"
        " audit AS ("
        "  INSERT INTO auth_events (at, kind, user_id) SELECT now(), 'user.imported', id"
        "    FROM created)"
        " SELECT b.ord FROM import_batch b JOIN created c USING (id)")
    done = {row["ord"] for row in created}
    if len(done) == len(rows):
        return done, []
    others = await conn.fetch(
        "SELECT b.ord, b.external_id,"
        "  CASE WHEN EXISTS (SELECT 1 FROM users u WHERE u.external_id = b.external_id"
        "                    AND u.id <> b.id) THEN NULL"
        "       WHEN EXISTS (SELECT 1 FROM users u WHERE u.email = b.email) THEN 'email'"
        "       WHEN EXISTS (SELECT 1 FROM users u WHERE u.phone = b.phone) THEN 'phone'"
        "       ELSE 'username' END AS taken"
        "  FROM import_batch b WHERE b.ord <> ALL($1::bigint[]) ORDER BY b.ord",
        list(done))
    return done, [NotCreated(r["ord"], r["external_id"], r["taken"]) for r in others]


async def foreign_hash_count(conn: asyncpg.Connection) -> int:
    """Users whose password is still an imported hash (read from users_foreign_hash)."""
    return int(await conn.fetchval(
        "SELECT count(*) FROM users WHERE password_hash LIKE '$authsvc-import$%'"))


async def foreign_hash_schemes(conn: asyncpg.Connection) -> dict[str, int]:
    """The same users by the imported hash's scheme."""
    rows = await conn.fetch(
        "SELECT substr(password_hash, 17)::jsonb ->> 'scheme' AS scheme, count(*) AS n"
        "  FROM users WHERE password_hash LIKE '$authsvc-import$%' GROUP BY 1 ORDER BY 1")
    return {row["scheme"]: row["n"] for row in rows}


async def imported_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM users WHERE external_id IS NOT NULL"))
