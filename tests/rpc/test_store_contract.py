"""The storage contract (``tests/store_contract.py``) held by PostgreSQL: the store
modules the composition root hands the hot flows (``runtime.app.sql_storage``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from authsvc.clock import FakeClock
from authsvc.domain.sessions.storage import Storage
from authsvc.runtime.app import running_app, sql_storage
from authsvc.store import sessions as session_rows
from authsvc.store import users as user_rows

from ..helpers import travel
from ..store_contract import StoreContract


class SqlBackend:
    def __init__(self, storage: Storage, database_url: str, clock: FakeClock) -> None:
        self.storage = storage
        self._url = database_url
        self._clock = clock

    async def add_user(self, email: str, *, scopes: tuple[str, ...] = ()) -> str:
        async with self.storage.db.connection() as conn:
            return await user_rows.insert(conn, "email", email, "hash", scopes, self._clock())

    async def change_password(self, user_id: str) -> None:
        async with self.storage.db.connection() as conn:
            await user_rows.set_password_hash(conn, user_id, "changed", self._clock())

    async def disable(self, user_id: str) -> None:
        async with self.storage.db.connection() as conn:
            await user_rows.disable(conn, user_id, self._clock())

    async def travel(self, seconds: float) -> None:
        await travel(self._url, seconds, self._clock)

    async def reasons(self, kind: str) -> list[str | None]:
        async with self.storage.db.connection() as conn:
            rows = await conn.fetch("SELECT reason FROM auth_events WHERE kind = $1"
                                    " ORDER BY id", kind)
        return [row["reason"] for row in rows]

    async def revoked(self, session_id: str) -> bool:
        async with self.storage.db.connection() as conn:
            return await session_rows.is_revoked(conn, session_id)


@pytest.fixture
async def backend(settings, database_url, clock) -> AsyncIterator[SqlBackend]:
    """The SQL implementation on a fresh database; no housekeeping runs meanwhile (its
    pruning would take what the cases travel past)."""
    async with running_app(settings, database_url, clock,
                           listen_for_revocations=False) as app:
        yield SqlBackend(sql_storage(app.db), database_url, clock)


class TestSqlStore(StoreContract):
    """PostgreSQL decides as the contract says."""
