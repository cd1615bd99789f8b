"""Brute-force defence: an exponential tarpit kept in PostgreSQL.

Three counters slow down sign-in guessing, each with its own thresholds:

- per identifier (also for identifiers that do not exist, so the answer
  reveals nothing), which stops a distributed attack on one account;
- per client address, which stops one address spraying many accounts;
- per identifier and address, the tightest.

After ``free`` failures a counter blocks for base·2^k seconds (k counting
further failures), capped, and forgets everything ``window`` seconds after
its last failure: a tarpit with automatic expiry, never a permanent lockout.
A blocked call is refused before any password hashing is spent, and does
not extend the block.

So that an attacker cannot lock the real user out through the per-identifier
counter, an (identifier, address) pair that signed in successfully within
``trust_ttl`` is exempt from it (it still has its own pair counter).

Refresh failures count per client address only: refresh tokens carry 256
bits and cannot be guessed, but a flood of bad ones still costs queries.

Keys are HMACs under a key derived from the key-encryption key, so the
table holds no identifier, and no password someone typed into one.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from ..clock import Clock
from ..errors import RateLimited
from ..store import throttles as rows
from ..store.database import Database
from ..store.throttles import Tarpit
from .identifiers import Identifier
from .keycrypto import derive_key


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    identifier: Tarpit
    address: Tarpit
    pair: Tarpit
    refresh_address: Tarpit
    trust_ttl: float


class Throttle:
    def __init__(self, db: Database, clock: Clock, policy: ThrottlePolicy,
                 key_encryption_key: bytes) -> None:
        self._db = db
        self._clock = clock
        self.policy = policy
        self._key = derive_key(key_encryption_key, b"authsvc throttle keys v1")

    async def check_sign_in(self, identifier: Identifier, address: str | None) -> None:
        """Raise RateLimited if any counter for this attempt is blocking."""
        now = self._clock()
        keys = [self._pair(identifier, address)] if address else []
        if address:
            keys.append(self._digest("address", address))
        async with self._db.connection() as conn:
            if not (address and await rows.is_trusted(conn, self._trust(identifier, address),
                                                      now)):
                keys.append(self._digest("identifier", identifier.kind, identifier.value))
            until = await rows.blocked_until(conn, keys, now)
        if until is not None:
            raise RateLimited(until - now)

    async def sign_in_failed(self, identifier: Identifier, address: str | None) -> None:
        now, policy = self._clock(), self.policy
        async with self._db.transaction() as conn:
            await rows.record_failure(
                conn, self._digest("identifier", identifier.kind, identifier.value),
                policy.identifier, now)
            if address:
                await rows.record_failure(conn, self._digest("address", address),
                                          policy.address, now)
                await rows.record_failure(conn, self._pair(identifier, address), policy.pair,
                                          now)

    async def sign_in_succeeded(self, identifier: Identifier, address: str | None) -> None:
        """Forget the pair's failures and trust the pair for trust_ttl."""
        if not address:
            return
        now = self._clock()
        async with self._db.transaction() as conn:
            await rows.clear(conn, self._pair(identifier, address))
            await rows.trust(conn, self._trust(identifier, address),
                             now + self.policy.trust_ttl)

    async def check_refresh(self, address: str | None) -> None:
        if not address:
            return
        now = self._clock()
        async with self._db.connection() as conn:
            until = await rows.blocked_until(conn, [self._digest("refresh", address)], now)
        if until is not None:
            raise RateLimited(until - now)

    async def refresh_failed(self, address: str | None) -> None:
        if not address:
            return
        async with self._db.connection() as conn:
            await rows.record_failure(conn, self._digest("refresh", address),
                                      self.policy.refresh_address, self._clock())

    async def forget_expired(self) -> None:
        window = max(t.window for t in (self.policy.identifier, self.policy.address,
                                        self.policy.pair, self.policy.refresh_address))
        async with self._db.connection() as conn:
            await rows.forget_expired(conn, self._clock(), window)

    def _pair(self, identifier: Identifier, address: str) -> str:
        return self._digest("pair", identifier.kind, identifier.value, address)

    def _trust(self, identifier: Identifier, address: str) -> str:
        return self._digest("trust", identifier.kind, identifier.value, address)

    def _digest(self, *parts: str) -> str:
        message = "\x00".join(parts).encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
