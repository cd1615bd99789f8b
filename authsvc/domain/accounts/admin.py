"""User administration: create, disable, set password, grant scopes.

Used by the CLI directly against the database (it works while ``authsvc
serve`` runs: every change is one transaction, and disabling a user revokes
their sessions with a NOTIFY the running workers hear).
"""

from __future__ import annotations

import uuid

from ...clock import Clock
from ...errors import InvalidArgument, NotFound
from ...store import events
from ...store import sessions as session_rows
from ...store import users as user_rows
from ...store.database import Connection, Database
from ...store.sessions import SessionRow
from ...store.users import UserRow
from ..sessions.revocation import Revocations
from . import identifiers
from .identifiers import Identifier, check_scopes
from .passwords import Passwords

__all__ = ["Accounts", "SessionRow", "UserRow", "check_scopes", "selector"]

def selector(kind: str | None, value: str) -> Identifier | str:
    """Whom an administrative request names: a user id, or an identifier."""
    if kind is None:
        raise InvalidArgument("user", "one of user_id, email, phone or username is required")
    if kind == "user_id":
        return value
    return identifiers.normalize(identifiers.kind_of(kind, "user"), value)


class Accounts:
    def __init__(self, db: Database, clock: Clock, passwords: Passwords,
                 revocations: Revocations) -> None:
        self._db = db
        self._clock = clock
        self._passwords = passwords
        self._revocations = revocations

    async def add(self, kind: str | None, raw: str, password: str,
                  scopes: tuple[str, ...] = ()) -> str:
        identifier = identifiers.normalize(identifiers.kind_of(kind), raw)
        identifiers.check_password(password, names=(identifier.value,))
        scopes = check_scopes(scopes)
        password_hash = await self._passwords.hash(password)
        now = self._clock()
        async with self._db.transaction() as conn:
            user_id = await user_rows.insert(conn, identifier.kind, identifier.value,
                                             password_hash, scopes, now)
            await events.record(conn, "user.created", user_id=user_id)
        return user_id

    async def disable(self, selector: Identifier | str) -> str:
        """Disable the user and revoke every session they have."""
        async with self._revocations.transaction() as change:
            user = await self._find(change.conn, selector)
            await user_rows.disable(change.conn, user.id, change.now)
            await events.record(change.conn, "user.disabled", user_id=user.id)
            await change.revoke(user_id=user.id, reason="user_disabled")
        return user.id

    async def set_password(self, selector: Identifier | str, password: str) -> str:
        """Replace the password and revoke every session of the user (OWASP: a
        password change ends the sessions an attacker may hold)."""
        named = await self.get(selector)
        identifiers.check_password(password, names=(named.email, named.phone, named.username))
        password_hash = await self._passwords.hash(password)
        async with self._revocations.transaction() as change:
            user = await self._find(change.conn, selector)
            await user_rows.set_password_hash(change.conn, user.id, password_hash, change.now)
            await events.record(change.conn, "user.password_changed",
                                user_id=user.id)
            await change.revoke(user_id=user.id, reason="password_changed")
        return user.id

    async def change_scopes(self, selector: Identifier | str, *, add: tuple[str, ...] = (),
                            remove: tuple[str, ...] = (),
                            replace: tuple[str, ...] | None = None,
                            ) -> tuple[str, tuple[str, ...]]:
        """Grant ``add`` and withdraw ``remove`` (or set exactly ``replace``); the
        user's id and the scopes they hold now. No session is revoked: each session's next
        access token (at its next Refresh) carries the user's scopes as they are."""
        add, remove = check_scopes(add), check_scopes(remove)
        replace = None if replace is None else check_scopes(replace)
        async with self._db.transaction() as conn:
            user = await self._find(conn, selector)
            scopes = await user_rows.change_scopes(conn, user.id, add=add, remove=remove,
                                                   replace=replace, now=self._clock())
            if scopes is None:
                raise NotFound()
            await events.record(conn, "user.scopes_changed", user_id=user.id,
                                reason=" ".join(scopes)[:512] or None)
        return user.id, scopes

    async def get(self, selector: Identifier | str) -> UserRow:
        async with self._db.connection() as conn:
            return await self._find(conn, selector)

    async def page(self, limit: int = 100, after: str | None = None) -> list[UserRow]:
        """Users in id order, ``limit`` at a time, after the id ``after``."""
        if not 1 <= limit <= 10_000:
            raise InvalidArgument("limit", "must be between 1 and 10000")
        if after is not None:
            try:
                uuid.UUID(after)
            except ValueError:
                raise InvalidArgument("after", "must be a user id") from None
        async with self._db.connection() as conn:
            return await user_rows.page(conn, limit, after)

    async def list_sessions(self, selector: Identifier | str,
                            limit: int = 1000) -> list[SessionRow]:
        """The user's sessions, newest first, ended ones included (at most ``limit``)."""
        async with self._db.connection() as conn:
            user = await self._find(conn, selector)
            return (await session_rows.list_for_user(conn, user.id))[:limit]

    async def revoke_session(self, session_id: str) -> bool:
        """Revoke one session; False if it was revoked already. NotFound if unknown."""
        if not session_id:
            raise InvalidArgument("session_id", "must not be empty")
        try:
            uuid.UUID(session_id)
        except ValueError:
            raise InvalidArgument("session_id", "must be a session id (a UUID)") from None
        async with self._revocations.transaction() as change:
            if await session_rows.user_of_session(change.conn, session_id) is None:
                raise NotFound("No such session.")
            revoked = await change.revoke([session_id], reason="revoked_by_admin")
        return bool(revoked)

    async def _find(self, conn: Connection, selector: Identifier | str) -> UserRow:
        if isinstance(selector, Identifier):
            user = await user_rows.find(conn, selector.kind, selector.value)
        else:
            user = await user_rows.get(conn, selector)
        if user is None:
            raise NotFound()
        return user
