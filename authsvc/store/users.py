"""SQL for users."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from ..clock import to_datetime
from ..errors import AlreadyExists

_COLUMNS = ("id, email, phone, username, password_hash, scopes, disabled_at,"
            " credentials_version, verified_at IS NOT NULL AS verified")
# The identifier kind picks a column; never user input.
_COLUMN_OF = {"email": "email", "phone": "phone", "username": "username"}


@dataclass(frozen=True, slots=True)
class UserRow:
    id: str
    email: str | None
    phone: str | None
    username: str | None
    password_hash: str | None  # None: signs in only through identity providers
    scopes: tuple[str, ...]
    disabled: bool
    credentials_version: int = 0
    verified: bool = True  # False: a verify-mode sign-up not verified yet


def select_by(kind: str) -> tuple[str, str]:
    """The columns a ``UserRow`` is read from and the column that names a user of
    identifier ``kind``, for a statement of another store module that reads the
    user too (``throttles.reserve_and_find``)."""
    return _COLUMNS, _COLUMN_OF[kind]


def row_of(record: asyncpg.Record | None) -> UserRow | None:
    """The ``UserRow`` of a record holding the ``select_by`` columns."""
    return _row(record)


def _row(record: asyncpg.Record | None) -> UserRow | None:
    if record is None:
        return None
    return UserRow(id=str(record["id"]), email=record["email"], phone=record["phone"],
                   username=record["username"], password_hash=record["password_hash"],
                   scopes=tuple(record["scopes"]), disabled=record["disabled_at"] is not None,
                   credentials_version=record["credentials_version"],
                   verified=record["verified"])


async def insert(conn: asyncpg.Connection, kind: str, value: str, password_hash: str,
                 scopes: tuple[str, ...], now: float) -> str:
    """A new user named by ``value`` in the ``kind`` column (email, phone, username).
    An operator creates it, so the account and its identifier count as proven."""
    user_id = uuid.uuid4()
    column = _COLUMN_OF[kind]
    try:
        await conn.execute(
            f"INSERT INTO users (id, {column}, password_hash, scopes, created_at, updated_at,"  # noqa: S608
            " email_verified_at, phone_verified_at) VALUES ($1, $2, $3, $4, $5, $5,"
            " CASE WHEN $6 = 'email' THEN $5::timestamptz END,"
            " CASE WHEN $6 = 'phone' THEN $5::timestamptz END)",
            user_id, value, password_hash, list(scopes), to_datetime(now), kind)
    except asyncpg.UniqueViolationError:
        raise AlreadyExists(kind) from None
    return str(user_id)


async def insert_signup(conn: asyncpg.Connection, kind: str, value: str, password_hash: str,
                        *, verified: bool) -> str | None:
    """A sign-up's user (``verified``: usable at once); None when the identifier is taken
    (nothing is written, and no error aborts the transaction)."""
    column = _COLUMN_OF[kind]
    found = await conn.fetchval(
        f"INSERT INTO users (id, {column}, password_hash, created_at, updated_at,"  # noqa: S608
        " verified_at, email_verified_at, phone_verified_at)"
        " VALUES ($1, $2, $3, now(), now(), CASE WHEN $4 THEN now() END,"
        " CASE WHEN $4 AND $5 = 'email' THEN now() END,"
        " CASE WHEN $4 AND $5 = 'phone' THEN now() END)"
        " ON CONFLICT DO NOTHING RETURNING id",
        uuid.uuid4(), value, password_hash, verified, kind)
    return None if found is None else str(found)


async def mark_verified(conn: asyncpg.Connection, user_id: str, kind: str) -> None:
    """``user_id``'s ``kind`` identifier (email or phone) was proven, by a code sent to
    it: so is the account."""
    if kind not in ("email", "phone"):  # a username is never proven
        raise ValueError(f"an email or phone number is proven, not a {kind!r}")
    await conn.execute(
        "UPDATE users SET verified_at = coalesce(verified_at, now()), updated_at = now(),"
        " email_verified_at = CASE WHEN $2 = 'email' THEN coalesce(email_verified_at, now())"
        "                     ELSE email_verified_at END,"
        " phone_verified_at = CASE WHEN $2 = 'phone' THEN coalesce(phone_verified_at, now())"
        "                     ELSE phone_verified_at END"
        " WHERE id = $1", uuid.UUID(user_id), kind)


async def find(conn: asyncpg.Connection, kind: str, value: str) -> UserRow | None:
    column = _COLUMN_OF[kind]
    return _row(await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM users WHERE {column} = $1", value))  # noqa: S608


async def get(conn: asyncpg.Connection, user_id: str) -> UserRow | None:
    try:
        key = uuid.UUID(user_id)
    except ValueError:
        return None
    return _row(await conn.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1", key))  # noqa: S608


async def page(conn: asyncpg.Connection, limit: int, after: str | None = None,
               ) -> list[UserRow]:
    """Users in id order, at most ``limit``, starting after the id ``after``."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM users WHERE $2::uuid IS NULL OR id > $2"  # noqa: S608
        " ORDER BY id LIMIT $1", limit, None if after is None else uuid.UUID(after))
    return [row for row in map(_row, rows) if row is not None]


async def set_password_hash(conn: asyncpg.Connection, user_id: str, password_hash: str,
                            now: float) -> bool:
    """A new password: every sign-in that read the old credentials can no longer
    create a session (``credentials_version`` moves)."""
    result = await conn.execute(
        "UPDATE users SET password_hash = $2, updated_at = $3,"
        " credentials_version = credentials_version + 1 WHERE id = $1",
        uuid.UUID(user_id), password_hash, to_datetime(now))
    return bool(result != "UPDATE 0")


async def change_password_if(conn: asyncpg.Connection, user_id: str, credentials_version: int,
                             password_hash: str) -> bool:
    """A new password, only while the credentials read at ``credentials_version`` still
    hold (no change or disabling since); moves the version like ``set_password_hash``."""
    result = await conn.execute(
        "UPDATE users SET password_hash = $3, updated_at = now(),"
        " credentials_version = credentials_version + 1"
        " WHERE id = $1 AND credentials_version = $2 AND disabled_at IS NULL",
        uuid.UUID(user_id), credentials_version, password_hash)
    return bool(result != "UPDATE 0")


async def rehash(conn: asyncpg.Connection, user_id: str, old_hash: str, new_hash: str,
                 now: float) -> bool:
    """The same password under new hash parameters, only while the stored hash is
    still ``old_hash`` (a rehash must not undo a concurrent password change)."""
    result = await conn.execute(
        "UPDATE users SET password_hash = $3, updated_at = $4"
        " WHERE id = $1 AND password_hash = $2",
        uuid.UUID(user_id), old_hash, new_hash, to_datetime(now))
    return bool(result != "UPDATE 0")


async def upgrade_hash(conn: asyncpg.Connection, user_id: str, credentials_version: int,
                       old_hash: str, new_hash: str) -> bool:
    """Replace an imported hash by authsvc's own, only while it is still ``old_hash``
    under the credentials a sign-in checked (a racing sign-in that upgraded first,
    a password change or a disabling make this a no-op, never an error). The
    credentials' version does not move: the password is the same."""
    result = await conn.execute(
        "UPDATE users SET password_hash = $4, updated_at = now()"
        " WHERE id = $1 AND credentials_version = $2 AND password_hash = $3"
        " AND disabled_at IS NULL", uuid.UUID(user_id), credentials_version, old_hash,
        new_hash)
    return bool(result != "UPDATE 0")


async def disable(conn: asyncpg.Connection, user_id: str, now: float) -> bool:
    result = await conn.execute(
        "UPDATE users SET disabled_at = coalesce(disabled_at, $2), updated_at = $2,"
        " credentials_version = credentials_version + 1 WHERE id = $1",
        uuid.UUID(user_id), to_datetime(now))
    return bool(result != "UPDATE 0")


async def still_signing_in(conn: asyncpg.Connection, user_id: str,
                           credentials_version: int) -> tuple[str, ...] | None:
    """Inside a session's transaction: the user's scopes, under a share lock on its
    row, while the credentials a sign-in checked still hold (same version, not
    disabled); None when they changed. A password change or disabling waits for
    this transaction, and this one waits for theirs."""
    found = await conn.fetchval(
        "SELECT scopes FROM users WHERE id = $1 AND credentials_version = $2"
        " AND disabled_at IS NULL FOR SHARE", uuid.UUID(user_id), credentials_version)
    return None if found is None else tuple(found)


async def change_scopes(conn: asyncpg.Connection, user_id: str, *, add: tuple[str, ...],
                        remove: tuple[str, ...], replace: tuple[str, ...] | None,
                        now: float) -> tuple[str, ...] | None:
    """Replace the user's scopes (``replace``), or drop ``remove`` and append ``add``
    in one statement, so concurrent changes never lose one another; the scopes now
    held, or None when there is no such user."""
    found = await conn.fetchval(
        "UPDATE users SET updated_at = $5, scopes = CASE WHEN $4::text[] IS NOT NULL THEN $4"
        " ELSE ARRAY(SELECT s FROM unnest(scopes) WITH ORDINALITY AS x(s, i)"
        "            WHERE s <> ALL($3::text[]) ORDER BY i)"
        "   || ARRAY(SELECT a FROM unnest($2::text[]) WITH ORDINALITY AS y(a, j)"
        "            WHERE a <> ALL(scopes) AND a <> ALL($3::text[]) ORDER BY j) END"
        " WHERE id = $1 RETURNING scopes",
        uuid.UUID(user_id), list(add), list(remove),
        None if replace is None else list(replace), to_datetime(now))
    return None if found is None else tuple(found)


async def typical_password_hash(conn: asyncpg.Connection) -> str | None:
    """One stored hash of the cost most users' hashes have (None: no password at all).

    The cost is an argon2 hash's parameters, or an imported hash's scheme and
    parameters (its salt and digest left out: runs of 16 or more base64
    characters); password-less accounts are not counted."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "WITH classed AS ("
        "  SELECT password_hash, CASE"
        "    WHEN password_hash LIKE '$argon2%' THEN 'argon2 ' || split_part(password_hash, '$', 4)"
        "    WHEN password_hash LIKE '$authsvc-import$%' THEN ("
        "      SELECT (j - 'hash' - 'salt')::text || ' ' || regexp_replace("
        "               coalesce(j ->> 'hash', ''), '[A-Za-z0-9+/.=]{16,}', '', 'g')"
        "        FROM (SELECT substr(password_hash, 17)::jsonb AS j) AS imported)"
        "  END AS cost FROM users)"
        " SELECT min(password_hash) FROM classed WHERE cost = ("
        "  SELECT cost FROM classed WHERE cost IS NOT NULL"
        "   GROUP BY cost ORDER BY count(*) DESC, cost LIMIT 1)")


@dataclass(frozen=True, slots=True)
class Identifiers:
    """A user's identifiers, and which of them were proven (an email or phone number
    each on its own; a username never)."""

    email: str | None
    phone: str | None
    username: str | None
    email_verified: bool
    phone_verified: bool


async def identifiers(conn: asyncpg.Connection, user_id: str) -> Identifiers | None:
    """The identifiers of ``user_id`` (one read by primary key); None for no such user."""
    try:
        key = uuid.UUID(user_id)
    except ValueError:
        return None
    found = await conn.fetchrow(
        "SELECT email, phone, username, email_verified_at IS NOT NULL AS email_verified,"
        " phone_verified_at IS NOT NULL AS phone_verified FROM users WHERE id = $1", key)
    if found is None:
        return None
    return Identifiers(email=found["email"], phone=found["phone"],
                       username=found["username"], email_verified=found["email_verified"],
                       phone_verified=found["phone_verified"])
