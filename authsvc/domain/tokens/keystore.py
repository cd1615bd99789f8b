"""The key ring as the database holds it: load, create, rotate, retire.

Every replica reads the same ``signing_keys`` table, so all of them sign and
verify alike. A replica reloads the ring periodically and, at most once per
``RELOAD_INTERVAL``, when a token names a kid it does not know (so forged
kids cannot make it hammer the database).
"""

from __future__ import annotations

import asyncio
import logging
import math

from ...clock import Clock
from ...config import Settings
from ...core.keys import KeyRing, SigningKey, public_jwk
from ...core.verification import ReloadGate
from ...errors import ConfigError, NotFound, Unavailable
from ...store import events
from ...store import keys as key_rows
from ...store.database import Database
from .. import keycrypto

log = logging.getLogger(__name__)

RELOAD_INTERVAL = 5.0


class KeyStore:
    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        if settings.key_encryption_key is None:
            raise ConfigError("AUTHSVC_KEY_ENCRYPTION_KEY is not set")
        self._db = db
        self._settings = settings
        self._kek = settings.key_encryption_key.reveal()
        self._clock = clock
        self.ring = KeyRing([])
        self._reloads = ReloadGate(RELOAD_INTERVAL)
        self._reload_lock = asyncio.Lock()

    async def load(self) -> KeyRing:
        async with self._db.connection() as conn:
            rows = await key_rows.load(conn)
        self.ring = KeyRing([self._decode(r) for r in rows])
        self._reloads.loaded()
        return self.ring

    async def reload_for_unknown_kid(self) -> None:
        """Reload, unless a reload happened within RELOAD_INTERVAL."""
        async with self._reload_lock:
            if self._reloads.due():
                await self.load()

    async def ensure_signing_key(self) -> SigningKey:
        """Load the ring; create a key of the configured algorithm if none signs now.

        Key times are whole seconds, so the database's microsecond rounding can
        never put a new key's start after the ``now`` that created it."""
        now = self._clock()
        ring = await self.load()
        signer = ring.signer(now)
        if signer is not None:
            return signer
        async with self._db.transaction() as conn:
            await key_rows.lock_for_creation(conn)
            existing = [self._decode(r) for r in await key_rows.load(conn)]
            signer = KeyRing(existing).signer(now)
            if signer is None:
                row = self._new_row(now, activates_at=math.floor(now))
                await key_rows.insert(conn, row)
                await events.record(conn, "key.created", reason=row.kid)
                log.info("created signing key %s (%s)", row.kid, row.alg)
        await self.load()
        signer = self.ring.signer(now)
        if signer is None:  # created or found just now; gone only if retired meanwhile
            raise Unavailable("no signing key")
        return signer

    async def rotate(self, publish_ahead: float = 0.0) -> str:
        """Add a new key that signs from now + ``publish_ahead`` and retire the current
        signer then; the retired key stays published until its tokens expired."""
        now = self._clock()
        start = math.floor(now) if publish_ahead <= 0 else math.ceil(now + publish_ahead)
        row = self._new_row(now, activates_at=start)
        publish_until = row.activates_at + self._settings.access_token_ttl \
            + self._settings.clock_leeway
        async with self._db.transaction() as conn:
            await key_rows.lock_for_creation(conn)
            current = KeyRing([self._decode(r) for r in await key_rows.load(conn)]).signer(now)
            await key_rows.insert(conn, row)
            if current is not None:
                await key_rows.retire(conn, current.kid, row.activates_at, publish_until)
            await events.record(conn, "key.rotated", reason=row.kid)
        await self.load()
        return row.kid

    async def retire(self, kid: str) -> None:
        """Stop signing with ``kid`` now; keep it published until its tokens expired.
        Refused unless another key signs now (rotate first)."""
        now = self._clock()
        async with self._db.transaction() as conn:
            await key_rows.lock_for_creation(conn)
            ring = [self._decode(r) for r in await key_rows.load(conn)]
            key = next((k for k in ring if k.kid == kid), None)
            if key is None:
                raise NotFound(f"No signing key {kid}.")
            if key.retired_at is not None and key.retired_at <= now:
                return
            if not any(k.kid != kid and k.signs_at(now) for k in ring):
                raise ConfigError(f"signing key {kid} is the only one; run 'authsvc keys "
                                  "rotate' first")
            await key_rows.retire(conn, kid, now, now + self._settings.access_token_ttl
                                  + self._settings.clock_leeway)
            await events.record(conn, "key.retired", reason=kid)
        await self.load()

    def _new_row(self, now: float, activates_at: float) -> key_rows.KeyRow:
        alg = self._settings.signing_alg
        private = keycrypto.generate_private_key(alg)
        jwk = public_jwk(alg, private.public_key())
        return key_rows.KeyRow(
            kid=jwk["kid"], alg=alg, public_jwk=jwk,
            private_key=keycrypto.encrypt_private_key(self._kek, jwk["kid"], private),
            created_at=math.floor(now), activates_at=activates_at, retired_at=None,
            publish_until=None)

    def _decode(self, row: key_rows.KeyRow) -> SigningKey:
        private = keycrypto.decrypt_private_key(self._kek, row.kid, row.private_key)
        return SigningKey(kid=row.kid, alg=row.alg, public_key=private.public_key(),
                          private_key=private, jwk=row.public_jwk, created_at=row.created_at,
                          activates_at=row.activates_at, retired_at=row.retired_at,
                          publish_until=row.publish_until)
