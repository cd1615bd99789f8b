"""Brute-force defence: an exponential tarpit kept in PostgreSQL.

Three counters slow down sign-in guessing, each with its own thresholds:

- per identifier (also for identifiers that do not exist, so the answer
  reveals nothing), which stops a distributed attack on one account;
- per client address, which stops one address spraying many accounts;
- per identifier and address, the tightest.

After ``free`` failures a counter blocks for base·2^k seconds (k counting
further failures), capped, and forgets everything ``window`` seconds after
its last failure: a tarpit with automatic expiry, never a permanent lockout.

Work is reserved before it is spent: an attempt takes its slot on every
counter in one atomic statement in PostgreSQL *before* any hash is computed
(counted as a failure up front), so a burst of concurrent guesses on any
number of workers and replicas gets at most the free budget hashed; the rest
are refused with nothing counted. A successful sign-in gives its slot back
in the transaction that creates the session.

IPv6 client addresses count by their /64 (``AUTHSVC_THROTTLE_IPV6_PREFIX``):
one client's prefix holds more addresses than any counter could, so a
single address would give unlimited fresh counters.

So that an attacker cannot lock the real user out through the per-identifier
counter, two kinds of attempt are exempt from it (they still count there,
and each has a tight counter of its own, with the pair's thresholds): a
device presenting a device token of this identifier (``domain.sessions.devices``),
and an (identifier, address) pair that signed in successfully within
``trust_ttl``. What remains: a person on a new device *and* a new address
while their account is under attack waits out the identifier's block
(capped at ``AUTHSVC_THROTTLE_MAX_DELAY``).

Every window and block is judged by the database's clock, never a
replica's. Refresh failures count per client address only: refresh tokens carry 256
bits and cannot be guessed, but a flood of bad ones still costs queries.

Keys are HMACs under a key derived from the key-encryption key, so the
table holds no identifier, and no password someone typed into one.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass, field

from ... import tracing
from ...errors import RateLimited
from ...store.database import Connection
from ...store.throttles import Tarpit
from ...store.users import UserRow
from ..accounts.identifiers import Identifier
from ..keycrypto import derive_key
from ..sessions.storage import ThrottleRows, Transactions


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    identifier: Tarpit
    address: Tarpit
    pair: Tarpit
    refresh_address: Tarpit
    trust_ttl: float
    ipv6_prefix: int = 64
    # Second-factor codes, per user (a password guesser holding many mfa_tokens
    # shares it); the pair's thresholds when not given.
    code: Tarpit | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    """The slots one sign-in attempt holds, to give back if it succeeds; or, with
    ``retry_after`` set, the refusal (nothing was counted)."""

    identifier: Identifier
    address: str | None
    device: str | None = None
    charged: list[tuple[str, Tarpit]] = field(default_factory=list)
    fresh_on_success: tuple[str, ...] = ()  # the pair's and the device's counters
    retry_after: float | None = None
    refusals: int = 0  # how many attempts the block has refused, this one included

    @property
    def worth_auditing(self) -> bool:
        """A refusal gets an audit row when its count is a power of two (1, 2, 4, …):
        a flood of refused calls leaves a logarithmic trail, not a row each."""
        return self.refusals & (self.refusals - 1) == 0

    def raise_if_refused(self) -> None:
        if self.retry_after is not None:
            raise RateLimited(self.retry_after)


class Throttle:
    def __init__(self, db: Transactions, rows: ThrottleRows, policy: ThrottlePolicy,
                 key_encryption_key: bytes) -> None:
        self._db = db
        self._rows = rows
        self.policy = policy
        self._key = derive_key(key_encryption_key, b"authsvc throttle keys v1")

    async def reserve_sign_in(self, conn: Connection, identifier: Identifier,
                              address: str | None, device: str | None = None,
                              ) -> tuple[Reservation, UserRow | None]:
        """Take this attempt's slot on each counter, or (``retry_after`` set, nothing
        counted) refuse when one of them is blocking. A pair that signed in recently
        is not held back by the per-identifier counter, though it still counts there.
        With the slot taken, the user the identifier names (None: unknown), read in
        the same statement: the sign-in's one round trip before its hash."""
        policy = self.policy
        address = self.client_key(address)
        by_identifier = (self._digest("identifier", identifier.kind, identifier.value),
                         policy.identifier)
        charged = [by_identifier]
        tight = []
        if address:
            tight.append((self._pair(identifier, address), policy.pair))
            charged += [(self._digest("address", address), policy.address), tight[-1]]
        if device:
            tight.append((self._digest("device", device), policy.pair))
            charged.append(tight[-1])
        checked = [key for key, _ in charged]
        exempt = None
        if device:
            checked.remove(by_identifier[0])
        elif address:
            exempt = (self._trust(identifier, address), by_identifier[0])
        with tracing.span("throttle.reserve", {"throttle.counters": len(charged)}) as span:
            refused, user = await self._rows.reserve_and_find(
                conn, checked, charged, exempt, identifier.kind, identifier.value)
            if span is not None:
                span.set_attribute("throttle.allowed", refused is None)
        if refused is not None:
            wait, refusals = refused
            return Reservation(identifier, address, device, retry_after=wait,
                               refusals=refusals), None
        return Reservation(identifier, address, device, charged,
                           fresh_on_success=tuple(key for key, _ in tight)), user

    async def sign_in_succeeded(self, conn: Connection, reservation: Reservation) -> None:
        """In the session's transaction: give the slots back, forget the pair's
        failures and trust the pair for trust_ttl."""
        identifier, address = reservation.identifier, reservation.address
        fresh = reservation.fresh_on_success
        trusted = (self._trust(identifier, address), self.policy.trust_ttl) if address else None
        await self._rows.release(conn, [c for c in reservation.charged if c[0] not in fresh],
                                 list(fresh), trusted)

    async def reserve_attempt(self, conn: Connection, scope: str, identifier: Identifier,
                              address: str | None, *, identifier_tarpit: Tarpit,
                              address_tarpit: Tarpit, pair_tarpit: Tarpit | None = None,
                              ) -> Reservation:
        """Take a slot of ``scope`` (code tries, messages sent, password changes) per
        identifier, address and (with ``pair_tarpit``) their pair; or refuse
        (``retry_after`` set, nothing counted). ``released`` gives the slots back."""
        address = self.client_key(address)
        charged = [(self._digest(scope, "identifier", identifier.kind, identifier.value),
                    identifier_tarpit)]
        if address:
            charged.append((self._digest(scope, "address", address), address_tarpit))
            if pair_tarpit is not None:
                charged.append((self._digest(scope, "pair", identifier.kind,
                                             identifier.value, address), pair_tarpit))
        refused = await self._rows.reserve(conn, [key for key, _ in charged], charged)
        if refused is not None:
            wait, refusals = refused
            return Reservation(identifier, address, retry_after=wait, refusals=refusals)
        return Reservation(identifier, address, charged=charged)

    async def released(self, conn: Connection, reservation: Reservation) -> None:
        """Give back every slot ``reserve_attempt`` took (the attempt succeeded)."""
        await self._rows.release(conn, reservation.charged, [])
    async def reserve_code(self, conn: Connection, user_id: str) -> float | None:
        """Take a second-factor code attempt's slot in the user's tarpit before the code
        is looked at (counted as a failure until ``code_succeeded``); or, nothing
        counted, the seconds left of the block in force."""
        key = self._digest("code", user_id)
        refused = await self._rows.reserve(conn, [key], [(key, self._code_tarpit)])
        return None if refused is None else refused[0]

    async def code_succeeded(self, conn: Connection, user_id: str) -> None:
        """A right code: the user's code tarpit starts afresh."""
        await self._rows.release(conn, [], [self._digest("code", user_id)])

    @staticmethod
    def raise_if_refused(wait: float | None) -> None:
        if wait is not None:
            raise RateLimited(wait)

    @property
    def _code_tarpit(self) -> Tarpit:
        return self.policy.code or self.policy.pair

    def client_key(self, address: str | None) -> str | None:
        """What the address counters count: the address, or its IPv6 prefix."""
        if not address:
            return None
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is the IPv4 client a.b.c.d
                return str(ip.ipv4_mapped)
            return str(ipaddress.ip_network(f"{ip}/{self.policy.ipv6_prefix}", strict=False))
        return str(ip)

    def refresh_key(self, address: str | None) -> str | None:
        """The refresh throttle's key for this client, checked in the refresh's own
        statement (``store.sessions.refresh``); None without an address."""
        address = self.client_key(address)
        return self._digest("refresh", address) if address else None

    async def check_refresh(self, address: str | None) -> None:
        """Refuse when this client's refresh throttle is blocking."""
        key = self.refresh_key(address)
        if key is None:
            return
        with tracing.span("throttle.check") as span:
            async with self._db.connection() as conn:
                wait = await self._rows.blocked_for(conn, [key])
            if span is not None:
                span.set_attribute("throttle.allowed", wait is None)
        if wait is not None:
            raise RateLimited(wait)

    async def refresh_failed(self, address: str | None) -> None:
        key = self.refresh_key(address)
        if key is None:
            return
        async with self._db.connection() as conn:
            await self._rows.record_failure(conn, key, self.policy.refresh_address)

    async def forget_expired(self, batch: int) -> int:
        """Delete at most ``batch`` stale rows of each throttle table; how many."""
        window = max(t.window for t in (self.policy.identifier, self.policy.address,
                                        self.policy.pair, self.policy.refresh_address,
                                        self._code_tarpit))
        async with self._db.connection() as conn:
            return await self._rows.forget_expired(conn, window, batch)

    def _pair(self, identifier: Identifier, address: str) -> str:
        return self._digest("pair", identifier.kind, identifier.value, address)

    def _trust(self, identifier: Identifier, address: str) -> str:
        return self._digest("trust", identifier.kind, identifier.value, address)

    def _digest(self, *parts: str) -> str:
        message = "\x00".join(parts).encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
