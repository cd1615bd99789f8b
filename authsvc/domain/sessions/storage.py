"""What the hot flows need of storage: the rows password sign-in, second-factor
sign-in and refresh read and write, declared here where those flows live (as
ory/hydra's ``jwk/manager.go`` declares the storage its domain needs).

The SQL implementation is the store's modules themselves (``store.users``,
``store.sessions``, ``store.throttles``, ``store.factors``, ``store.events``):
each satisfies its protocol as a module, and mypy checks that where the
composition root hands them in (``runtime.app``, which names each pairing
once). The unit tests hold in-memory fakes of the same protocols
(``tests/unit/fakes.py``), and one suite of cases about the contract runs
against both the fakes and PostgreSQL (``tests/store_contract.py``), so a fake
cannot quietly drift from what the SQL decides.

Every method takes the connection of the transaction it belongs to, as the
store's functions always have: a flow opens one transaction
(``Transactions.transaction``) and every row it touches in there commits or
rolls back together. Time is the store's: whatever a method compares with a
stored time it judges by its own clock (PostgreSQL's ``now()``), never the
caller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from ...store.database import Connection
from ...store.factors import Challenge, Summary
from ...store.sessions import ActiveRefresh, Refreshed, RefreshRefused
from ...store.throttles import Tarpit
from ...store.users import UserRow


class Transactions(Protocol):
    """Connections lent one at a time, inside a transaction or not."""

    def connection(self) -> AbstractAsyncContextManager[Connection]: ...

    def transaction(self) -> AbstractAsyncContextManager[Connection]: ...


class UserRows(Protocol):
    async def find(self, conn: Connection, kind: str, value: str) -> UserRow | None:
        """The user named by ``value`` in the ``kind`` column (email, phone, username)."""

    async def get(self, conn: Connection, user_id: str) -> UserRow | None: ...

    async def still_signing_in(self, conn: Connection, user_id: str,
                               credentials_version: int) -> tuple[str, ...] | None:
        """The user's scopes while the credentials read at ``credentials_version``
        still hold (not changed, not disabled), with the row share-locked until the
        transaction ends; None otherwise."""

    async def rehash(self, conn: Connection, user_id: str, old_hash: str, new_hash: str,
                     now: float) -> bool:
        """The same password under new parameters, only while the hash is ``old_hash``."""

    async def upgrade_hash(self, conn: Connection, user_id: str, credentials_version: int,
                           old_hash: str, new_hash: str) -> bool:
        """An imported hash replaced by authsvc's, only while it is still ``old_hash``
        under ``credentials_version`` and the user is not disabled (else a no-op)."""


class SessionRows(Protocol):
    async def create(self, conn: Connection, *, user_id: str, scopes: tuple[str, ...],
                     ttl: int, client_addr: str | None, user_agent: str | None,
                     amr: Sequence[str] | None = None,
                     recorded: tuple[str, str | None] | None = None) -> str:
        """A new session (refresh counter 0) of ``ttl`` seconds; its id. ``recorded``:
        (kind, reason) of the audit row (``EventRows.record``) written with it."""

    async def refresh(self, conn: Connection, session_id: str, presented: int, *,
                      grace: float, idle: float, throttle: str | None, audit_success: bool,
                      client_addr: str | None, user_agent: str | None,
                      ) -> Refreshed | RefreshRefused:
        """One refresh with the token of counter ``presented``, decided and written at
        once: the current counter rotates; the previous one within ``grace`` seconds
        of that rotation is repeated (same successor); an older one is reuse, and the
        session is revoked; a blocked ``throttle`` key refuses before anything."""

    async def legacy_token(self, conn: Connection, token_hash: bytes,
                           ) -> tuple[str, int] | None: ...

    async def active_refresh(self, conn: Connection, session_id: str, presented: int, *,
                             idle: float) -> ActiveRefresh | None: ...


class ThrottleRows(Protocol):
    async def reserve(self, conn: Connection, checked: list[str],
                      charged: list[tuple[str, Tarpit]]) -> tuple[float, int] | None:
        """Take one slot on every charged key (None), or refuse with the seconds left
        of the latest block among ``checked`` and its refusals (nothing counted)."""

    async def reserve_and_find(self, conn: Connection, checked: list[str],
                               charged: list[tuple[str, Tarpit]],
                               exempt: tuple[str, str] | None, kind: str, value: str,
                               ) -> tuple[tuple[float, int] | None, UserRow | None]:
        """``reserve`` and then, when the slot was taken, ``UserRows.find``, in one
        statement (a sign-in's one round trip before its hash). ``exempt``: (trust key,
        key): while the trust key is trusted, the key is charged but not checked."""

    async def release(self, conn: Connection, released: list[tuple[str, Tarpit]],
                      cleared: list[str], trusted: tuple[str, float] | None = None) -> None:
        """Give back the slots ``reserve`` took; the cleared keys start afresh;
        ``trusted``: (key, ttl), ``trust`` too, in the same round trip."""

    async def trust(self, conn: Connection, key: str, ttl: float) -> None: ...

    async def is_trusted(self, conn: Connection, key: str) -> bool: ...

    async def blocked_for(self, conn: Connection, keys: list[str]) -> float | None: ...

    async def record_failure(self, conn: Connection, key: str, tarpit: Tarpit) -> None: ...

    async def forget_expired(self, conn: Connection, window: float, batch: int) -> int: ...


class ChallengeRows(Protocol):
    """Sign-ins waiting for their second factor, and what factors a user has."""

    async def summary(self, conn: Connection, user_id: str) -> Summary: ...

    async def create_challenge(self, conn: Connection, token_hash: bytes, user_id: str,
                               credentials_version: int, ttl: float, first_factor: str = "pwd",
                               ) -> None: ...

    async def lock_challenge(self, conn: Connection, token_hash: bytes, max_attempts: int,
                             ) -> Challenge | None:
        """The live challenge (not spent, not expired, attempts left), locked."""

    async def challenge_failed(self, conn: Connection, token_hash: bytes) -> None: ...

    async def spend_challenge(self, conn: Connection, token_hash: bytes) -> None: ...


class EventRows(Protocol):
    async def record(self, conn: Connection, kind: str, *, reason: str | None = None,
                     user_id: str | None = None, session_id: str | None = None,
                     client_addr: str | None = None, user_agent: str | None = None,
                     ) -> None:
        """One audit row."""


@dataclass(frozen=True, slots=True)
class Storage:
    """The rows of the hot flows, and the transactions they are read and written in."""

    db: Transactions
    users: UserRows
    sessions: SessionRows
    throttles: ThrottleRows
    challenges: ChallengeRows
    events: EventRows
