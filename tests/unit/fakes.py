"""In-memory fakes of the hot flows' storage (``authsvc.domain.sessions.storage``).

Each fake decides what its SQL counterpart decides (``refresh_session``,
``throttle_reserve``/``throttle_release`` and the statements of ``store``),
judged by an injected clock standing in for the database's ``now()``. The
shared contract suite (``tests/store_contract.py``) runs the same cases against
these and PostgreSQL, so they cannot drift apart unnoticed.

A transaction works on a copy of the tables and puts it back on an exception,
as a rolled-back transaction would; nothing runs concurrently in between (the
fakes never yield to the event loop), which is what the row locks give SQL.
"""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from authsvc.clock import FakeClock
from authsvc.domain.sessions.storage import Storage
from authsvc.store.factors import Challenge, Summary
from authsvc.store.sessions import ActiveRefresh, Refreshed, RefreshOutcome, RefreshRefused
from authsvc.store.throttles import Tarpit
from authsvc.store.users import UserRow

CONNECTION = object()  # what a fake transaction lends: the fakes ignore it


@dataclass
class _Session:
    user_id: str
    expires_at: float
    last_used_at: float
    created_at: float
    amr: tuple[str, ...]
    counter: int = 0
    moved_at: float | None = None
    revoked_at: float | None = None


@dataclass
class _Throttle:
    failures: int
    last_failure_at: float
    blocked_until: float | None = None
    refusals: int = 0


@dataclass
class _Challenge:
    user_id: str
    credentials_version: int
    expires_at: float
    attempts: int = 0
    spent: bool = False
    first_factor: str = "pwd"


@dataclass(frozen=True)
class Event:
    kind: str
    reason: str | None
    user_id: str | None
    session_id: str | None


@dataclass
class Tables:
    users: dict[str, UserRow] = field(default_factory=dict)
    sessions: dict[str, _Session] = field(default_factory=dict)
    legacy_tokens: dict[bytes, tuple[str, int]] = field(default_factory=dict)
    throttles: dict[str, _Throttle] = field(default_factory=dict)
    trusted: dict[str, float] = field(default_factory=dict)
    challenges: dict[bytes, _Challenge] = field(default_factory=dict)
    factors: dict[str, Summary] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


class FakeStore:
    """One in-memory database: its tables, its clock, and the ``Storage`` over them."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.tables = Tables()
        self.storage = Storage(db=_Transactions(self), users=_Users(self),
                               sessions=_Sessions(self), throttles=_Throttles(self),
                               challenges=_Challenges(self), events=_Events(self))

    def now(self) -> float:
        return self.clock()

    # --- arranging (what other flows would have written) -----------------------

    def add_user(self, email: str, password_hash: str, *, scopes: tuple[str, ...] = (),
                 verified: bool = True) -> str:
        user_id = str(uuid.uuid4())
        self.tables.users[user_id] = UserRow(
            id=user_id, email=email, phone=None, username=None, password_hash=password_hash,
            scopes=scopes, disabled=False, credentials_version=0, verified=verified)
        return user_id

    def change_password(self, user_id: str, password_hash: str = "changed") -> None:  # noqa: S107 (a stored hash's stand-in)
        user = self.tables.users[user_id]
        self.tables.users[user_id] = replace(user, password_hash=password_hash,
                                             credentials_version=user.credentials_version + 1)

    def disable(self, user_id: str) -> None:
        user = self.tables.users[user_id]
        self.tables.users[user_id] = replace(user, disabled=True,
                                             credentials_version=user.credentials_version + 1)

    def give_factor(self, user_id: str, *, totp: bool = True, recovery_codes: int = 10,
                    passkeys: int = 0) -> None:
        self.tables.factors[user_id] = Summary(totp, recovery_codes, passkeys)

    def events(self, kind: str) -> list[Event]:
        return [e for e in self.tables.events if e.kind == kind]

    def revoke(self, session_id: str, why: str) -> None:
        session = self.tables.sessions[session_id]
        if session.revoked_at is None:
            session.revoked_at = self.now()
            self.tables.events.append(Event("session.revoked", why, session.user_id,
                                            session_id))


class _Rows:
    def __init__(self, store: FakeStore) -> None:
        self._store = store

    @property
    def _t(self) -> Tables:
        return self._store.tables

    def _now(self) -> float:
        return self._store.now()


class _Transactions(_Rows):
    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        yield CONNECTION

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        saved = copy.deepcopy(self._store.tables)
        try:
            yield CONNECTION
        except BaseException:
            self._store.tables = saved
            raise


class _Users(_Rows):
    async def find(self, conn: Any, kind: str, value: str) -> UserRow | None:
        return next((u for u in self._t.users.values() if getattr(u, kind) == value), None)

    async def get(self, conn: Any, user_id: str) -> UserRow | None:
        return self._t.users.get(user_id)

    async def still_signing_in(self, conn: Any, user_id: str, credentials_version: int,
                               ) -> tuple[str, ...] | None:
        user = self._t.users.get(user_id)
        if user is None or user.disabled or user.credentials_version != credentials_version:
            return None
        return user.scopes

    async def rehash(self, conn: Any, user_id: str, old_hash: str, new_hash: str,
                     now: float) -> bool:
        user = self._t.users.get(user_id)
        if user is None or user.password_hash != old_hash:
            return False
        self._store.tables.users[user_id] = replace(user, password_hash=new_hash)
        return True

    async def upgrade_hash(self, conn: Any, user_id: str, credentials_version: int,
                           old_hash: str, new_hash: str) -> bool:
        user = self._t.users.get(user_id)
        if (user is None or user.password_hash != old_hash or user.disabled
                or user.credentials_version != credentials_version):
            return False
        self._store.tables.users[user_id] = replace(user, password_hash=new_hash)
        return True


class _Sessions(_Rows):
    async def create(self, conn: Any, *, user_id: str, scopes: tuple[str, ...], ttl: int,
                     client_addr: str | None, user_agent: str | None,
                     amr: Sequence[str] | None = None,
                     recorded: tuple[str, str | None] | None = None) -> str:
        now, session_id = self._now(), str(uuid.uuid4())
        self._t.sessions[session_id] = _Session(user_id, now + ttl, now, now,
                                                tuple(amr or ("pwd",)))
        if recorded is not None:
            self._t.events.append(Event(recorded[0], recorded[1], user_id, session_id))
        return session_id

    async def refresh(self, conn: Any, session_id: str, presented: int, *, grace: float,
                      idle: float, throttle: str | None, audit_success: bool,
                      client_addr: str | None, user_agent: str | None,
                      ) -> Refreshed | RefreshRefused:
        """``refresh_session`` (migrations 0004, 0006), step by step."""
        t, now = self._t, self._now()
        block = t.throttles.get(throttle) if throttle else None
        if block is not None and block.blocked_until is not None and block.blocked_until > now:
            return RefreshRefused(RefreshOutcome.THROTTLED, block.blocked_until - now)
        s = t.sessions.get(session_id)
        if s is None or presented > s.counter:
            return RefreshRefused(RefreshOutcome.UNKNOWN)
        user = t.users[s.user_id]
        if s.revoked_at is not None or user.disabled or now >= s.expires_at \
                or now >= s.last_used_at + idle:
            t.events.append(Event("refresh.failure", "session_ended", s.user_id, session_id))
            return RefreshRefused(RefreshOutcome.ENDED)
        if presented == s.counter:
            s.counter, s.moved_at = presented + 1, now
            outcome = RefreshOutcome.ROTATED
        elif presented == s.counter - 1 and s.moved_at is not None and now <= s.moved_at + grace:
            outcome = RefreshOutcome.REPEATED
        else:
            t.events.append(Event("refresh.reuse_detected", None, s.user_id, session_id))
            self._store.revoke(session_id, "refresh_token_reused")
            return RefreshRefused(RefreshOutcome.REUSED)
        s.last_used_at = max(s.last_used_at, now)
        if audit_success:
            t.events.append(Event("refresh.success", None, s.user_id, session_id))
        return Refreshed(outcome, s.user_id, user.scopes, s.counter, s.expires_at - now,
                         s.amr, now - s.created_at)

    async def legacy_token(self, conn: Any, token_hash: bytes) -> tuple[str, int] | None:
        return self._t.legacy_tokens.get(token_hash)

    async def active_refresh(self, conn: Any, session_id: str, presented: int, *,
                             idle: float) -> ActiveRefresh | None:
        t, now = self._t, self._now()
        s = t.sessions.get(session_id)
        if s is None or s.counter != presented or s.revoked_at is not None \
                or t.users[s.user_id].disabled or now >= s.expires_at \
                or now >= s.last_used_at + idle:
            return None
        return ActiveRefresh(session_id, s.user_id, t.users[s.user_id].scopes,
                             min(s.expires_at, s.last_used_at + idle))


class _Throttles(_Rows):
    async def reserve(self, conn: Any, checked: list[str], charged: list[tuple[str, Tarpit]],
                      ) -> tuple[float, int] | None:
        """``throttle_reserve`` (migrations 0003, 0007)."""
        t, now = self._t, self._now()
        for key, _ in sorted(charged):
            t.throttles.setdefault(key, _Throttle(0, now))
        refusing = [t.throttles[k] for k in checked
                    if k in t.throttles and (t.throttles[k].blocked_until or 0) > now]
        for row in refusing:
            row.refusals += 1
        if refusing:
            return (max(r.blocked_until or 0 for r in refusing) - now,
                    max(r.refusals for r in refusing))
        for key, tarpit in charged:
            row = t.throttles[key]
            stale = row.last_failure_at < now - tarpit.window or row.failures == 0
            row.failures = 1 if stale else row.failures + 1
            row.last_failure_at = now
            if row.failures > tarpit.free:
                row.refusals = 0
                row.blocked_until = now + min(
                    tarpit.cap, tarpit.base * 2 ** (row.failures - 1 - tarpit.free))
            elif stale:
                row.blocked_until = None
        return None

    async def reserve_and_find(self, conn: Any, checked: list[str],
                               charged: list[tuple[str, Tarpit]],
                               exempt: tuple[str, str] | None, kind: str, value: str,
                               ) -> tuple[tuple[float, int] | None, UserRow | None]:
        if exempt is not None and await self.is_trusted(conn, exempt[0]):
            checked = [key for key in checked if key != exempt[1]]
        refused = await self.reserve(conn, checked, charged)
        if refused is not None:
            return refused, None
        return None, next((u for u in self._t.users.values() if getattr(u, kind) == value),
                          None)

    async def release(self, conn: Any, released: list[tuple[str, Tarpit]],
                      cleared: list[str], trusted: tuple[str, float] | None = None) -> None:
        """``throttle_release`` (migrations 0003, 0007)."""
        t = self._t
        if trusted is not None:
            await self.trust(conn, *trusted)
        for key, tarpit in released:
            row = t.throttles.get(key)
            if row is not None and row.failures > 0:
                row.failures -= 1
                if row.failures <= tarpit.free:
                    row.blocked_until = None
        for key in cleared:
            t.throttles.pop(key, None)

    async def trust(self, conn: Any, key: str, ttl: float) -> None:
        self._t.trusted[key] = self._now() + ttl

    async def is_trusted(self, conn: Any, key: str) -> bool:
        return self._t.trusted.get(key, 0) > self._now()

    async def blocked_for(self, conn: Any, keys: list[str]) -> float | None:
        now = self._now()
        ends = [r.blocked_until for k in keys if (r := self._t.throttles.get(k)) is not None
                and r.blocked_until is not None and r.blocked_until > now]
        return max(ends) - now if ends else None

    async def record_failure(self, conn: Any, key: str, tarpit: Tarpit) -> None:
        t, now = self._t, self._now()
        row = t.throttles.get(key)
        if row is None or row.last_failure_at < now - tarpit.window:
            t.throttles[key] = _Throttle(1, now, now + tarpit.base if tarpit.free < 1 else None)
            return
        row.failures += 1
        row.last_failure_at = now
        if row.failures > tarpit.free:
            row.blocked_until = now + min(tarpit.cap,
                                          tarpit.base * 2 ** (row.failures - 1 - tarpit.free))

    async def forget_expired(self, conn: Any, window: float, batch: int) -> int:
        t, now = self._t, self._now()
        stale = [k for k, r in t.throttles.items() if r.last_failure_at < now - window
                 and (r.blocked_until is None or r.blocked_until < now)][:batch]
        expired = [k for k, until in t.trusted.items() if until < now][:batch]
        for key in stale:
            del t.throttles[key]
        for key in expired:
            del t.trusted[key]
        return len(stale) + len(expired)


class _Challenges(_Rows):
    async def summary(self, conn: Any, user_id: str) -> Summary:
        return self._t.factors.get(user_id, Summary(False, 0, 0))

    async def create_challenge(self, conn: Any, token_hash: bytes, user_id: str,
                               credentials_version: int, ttl: float, first_factor: str = "pwd",
                               ) -> None:
        self._t.challenges[token_hash] = _Challenge(user_id, credentials_version,
                                                    self._now() + ttl,
                                                    first_factor=first_factor)

    async def lock_challenge(self, conn: Any, token_hash: bytes, max_attempts: int,
                             ) -> Challenge | None:
        c = self._t.challenges.get(token_hash)
        if c is None or c.spent or c.expires_at <= self._now() or c.attempts >= max_attempts:
            return None
        return Challenge(c.user_id, c.credentials_version, c.first_factor)

    async def challenge_failed(self, conn: Any, token_hash: bytes) -> None:
        if (c := self._t.challenges.get(token_hash)) is not None:
            c.attempts += 1

    async def spend_challenge(self, conn: Any, token_hash: bytes) -> None:
        if (c := self._t.challenges.get(token_hash)) is not None:
            c.spent = True


class _Events(_Rows):
    async def record(self, conn: Any, kind: str, *, reason: str | None = None,
                     user_id: str | None = None, session_id: str | None = None,
                     client_addr: str | None = None, user_agent: str | None = None) -> None:
        self._t.events.append(Event(kind, reason, user_id, session_id))
