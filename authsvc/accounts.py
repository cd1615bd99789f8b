"""User administration: create, disable, set password, grant scopes.

Used by the CLI directly against the database (it works while ``authsvc
serve`` runs: every change is one transaction, and disabling a user revokes
their sessions with a NOTIFY the running workers hear).
"""

from __future__ import annotations

import re
import uuid

from . import identifiers
from .clock import Clock
from .errors import InvalidArgument, NotFound
from .identifiers import Identifier, Kind
from .passwords import Passwords
from .revocations import RevocationSet
from .store import events
from .store import sessions as session_rows
from .store import users as user_rows
from .store.database import Connection, Database
from .store.sessions import SessionRow
from .store.users import UserRow

# RFC 6749 scope-token: printable ASCII except space, double quote and backslash.
_SCOPE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]{1,128}")


def check_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    for scope in scopes:
        if not _SCOPE.fullmatch(scope):
            raise InvalidArgument("scope", "must be 1 to 128 printable ASCII characters "
                                  "without spaces, quotes or backslashes")
    return tuple(dict.fromkeys(scopes))


class Accounts:
    def __init__(self, db: Database, clock: Clock, passwords: Passwords,
                 revocations: RevocationSet | None = None) -> None:
        self._db = db
        self._clock = clock
        self._passwords = passwords
        self._revocations = revocations  # None in the CLI: workers hear the NOTIFY

    async def add(self, kind: Kind, raw: str, password: str,
                  scopes: tuple[str, ...] = ()) -> str:
        identifier = identifiers.normalize(kind, raw)
        identifiers.check_password(password)
        scopes = check_scopes(scopes)
        password_hash = await self._passwords.hash(password)
        now = self._clock()
        async with self._db.transaction() as conn:
            user_id = await user_rows.insert(conn, identifier, password_hash, scopes, now)
            await events.record(conn, "user.created", now, user_id=user_id)
        return user_id

    async def disable(self, selector: Identifier | str) -> str:
        """Disable the user and revoke every session they have."""
        now = self._clock()
        async with self._db.transaction() as conn:
            user = await self._find(conn, selector)
            await user_rows.disable(conn, user.id, now)
            revoked = await session_rows.revoke_all_of_user(conn, user.id, now, "user_disabled")
            await events.record(conn, "user.disabled", now, user_id=user.id)
            for sid in revoked:
                await events.record(conn, "session.revoked", now, user_id=user.id,
                                    session_id=sid, reason="user_disabled")
        self._revoked(revoked)
        return user.id

    async def set_password(self, selector: Identifier | str, password: str) -> str:
        """Replace the password and revoke every session of the user (OWASP: a
        password change ends the sessions an attacker may hold)."""
        identifiers.check_password(password)
        password_hash = await self._passwords.hash(password)
        now = self._clock()
        async with self._db.transaction() as conn:
            user = await self._find(conn, selector)
            await user_rows.set_password_hash(conn, user.id, password_hash, now)
            revoked = await session_rows.revoke_all_of_user(conn, user.id, now,
                                                            "password_changed")
            await events.record(conn, "user.password_changed", now, user_id=user.id)
            for sid in revoked:
                await events.record(conn, "session.revoked", now, user_id=user.id,
                                    session_id=sid, reason="password_changed")
        self._revoked(revoked)
        return user.id

    async def get(self, selector: Identifier | str) -> UserRow:
        async with self._db.connection() as conn:
            return await self._find(conn, selector)

    async def list_sessions(self, selector: Identifier | str,
                            limit: int = 1000) -> list[SessionRow]:
        """The user's sessions, newest first, ended ones included (at most ``limit``)."""
        async with self._db.connection() as conn:
            user = await self._find(conn, selector)
            return (await session_rows.list_for_user(conn, user.id))[:limit]

    async def revoke_session(self, session_id: str) -> bool:
        """Revoke one session; False if it was revoked already. NotFound if unknown."""
        try:
            uuid.UUID(session_id)
        except ValueError:
            raise InvalidArgument("session_id", "must be a session id (a UUID)") from None
        now = self._clock()
        async with self._db.transaction() as conn:
            owner = await session_rows.user_of_session(conn, session_id)
            if owner is None:
                raise NotFound("No such session.")
            revoked = await session_rows.revoke(conn, [session_id], now, "revoked_by_admin")
            for sid in revoked:
                await events.record(conn, "session.revoked", now, user_id=owner,
                                    session_id=sid, reason="revoked_by_admin")
        self._revoked(revoked)
        return bool(revoked)

    def _revoked(self, session_ids: list[str]) -> None:
        if self._revocations is not None:
            self._revocations.add(session_ids)

    async def _find(self, conn: Connection, selector: Identifier | str) -> UserRow:
        if isinstance(selector, Identifier):
            user = await user_rows.find(conn, selector)
        else:
            user = await user_rows.get(conn, selector)
        if user is None:
            raise NotFound()
        return user
