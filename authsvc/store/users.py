"""SQL for users."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from ..clock import to_datetime
from ..errors import AlreadyExists

_COLUMNS = "id, email, phone, username, password_hash, scopes, disabled_at"
# The identifier kind picks a column; never user input.
_COLUMN_OF = {"email": "email", "phone": "phone", "username": "username"}


@dataclass(frozen=True, slots=True)
class UserRow:
    id: str
    email: str | None
    phone: str | None
    username: str | None
    password_hash: str
    scopes: tuple[str, ...]
    disabled: bool


def _row(record: asyncpg.Record | None) -> UserRow | None:
    if record is None:
        return None
    return UserRow(id=str(record["id"]), email=record["email"], phone=record["phone"],
                   username=record["username"], password_hash=record["password_hash"],
                   scopes=tuple(record["scopes"]), disabled=record["disabled_at"] is not None)


async def insert(conn: asyncpg.Connection, kind: str, value: str, password_hash: str,
                 scopes: tuple[str, ...], now: float) -> str:
    """A new user named by ``value`` in the ``kind`` column (email, phone, username)."""
    user_id = uuid.uuid4()
    column = _COLUMN_OF[kind]
    try:
        await conn.execute(
            f"INSERT INTO users (id, {column}, password_hash, scopes, created_at, updated_at)"  # noqa: S608
            " VALUES ($1, $2, $3, $4, $5, $5)",
            user_id, value, password_hash, list(scopes), to_datetime(now))
    except asyncpg.UniqueViolationError:
        raise AlreadyExists(kind) from None
    return str(user_id)


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


async def set_password_hash(conn: asyncpg.Connection, user_id: str, password_hash: str,
                            now: float, *, only_if: str | None = None) -> bool:
    """Replace the hash; with ``only_if``, only while the stored hash is still that one
    (a rehash on sign-in must not undo a concurrent password change)."""
    result = await conn.execute(
        "UPDATE users SET password_hash = $2, updated_at = $3"
        " WHERE id = $1 AND ($4::text IS NULL OR password_hash = $4)",
        uuid.UUID(user_id), password_hash, to_datetime(now), only_if)
    return bool(result != "UPDATE 0")


async def disable(conn: asyncpg.Connection, user_id: str, now: float) -> bool:
    result = await conn.execute(
        "UPDATE users SET disabled_at = coalesce(disabled_at, $2), updated_at = $2"
        " WHERE id = $1", uuid.UUID(user_id), to_datetime(now))
    return bool(result != "UPDATE 0")


async def set_scopes(conn: asyncpg.Connection, user_id: str, scopes: tuple[str, ...],
                     now: float) -> None:
    await conn.execute("UPDATE users SET scopes = $2, updated_at = $3 WHERE id = $1",
                       uuid.UUID(user_id), list(scopes), to_datetime(now))
