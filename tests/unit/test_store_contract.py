"""The storage contract (``tests/store_contract.py``) held by the in-memory fakes the
unit tests of the hot flows run on (``tests/unit/fakes.py``)."""

from __future__ import annotations

import pytest

from authsvc.clock import FakeClock

from ..store_contract import StoreContract
from .fakes import FakeStore


class FakeBackend:
    def __init__(self) -> None:
        self.fake = FakeStore(FakeClock())
        self.storage = self.fake.storage

    async def add_user(self, email: str, *, scopes: tuple[str, ...] = ()) -> str:
        return self.fake.add_user(email, "hash", scopes=scopes)

    async def change_password(self, user_id: str) -> None:
        self.fake.change_password(user_id)

    async def disable(self, user_id: str) -> None:
        self.fake.disable(user_id)

    async def travel(self, seconds: float) -> None:
        self.fake.clock.advance(seconds)

    async def reasons(self, kind: str) -> list[str | None]:
        return [event.reason for event in self.fake.events(kind)]

    async def revoked(self, session_id: str) -> bool:
        return self.fake.tables.sessions[session_id].revoked_at is not None


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


class TestFakeStore(StoreContract):
    """The fakes decide as PostgreSQL does."""
