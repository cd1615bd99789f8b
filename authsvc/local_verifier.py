"""LocalVerifier: access tokens checked in-process, revocations followed live.

It fetches the key set with ``GetJwks`` (again every ``jwks_interval``, and
on an unknown kid at most once per ``kid_refetch_interval``, so forged kids
cannot make it hammer authsvc), verifies with ``authsvc.tokens.verify``
under the same strict rules as ``Validate``, and follows
``WatchRevocations`` into a ``RevocationSet``. When the stream is down it
reconnects with backoff (0.1 s doubling to 5 s, jittered) and trusts what it
has for ``max_staleness`` seconds; past that every token is refused with
``Unavailable`` (fail closed). Import it from ``authsvc.verifiers``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import jwt

from . import tokens
from .clock import Clock, system_clock
from .errors import TokenInvalid, TokenMissing, TokenRevoked, Unavailable
from .keys import SigningKey
from .revocations import RevocationSet
from .tokens import AccessClaims, TokenRules, VerifiedTokens
from .v1 import auth_pb2, auth_pb2_grpc

log = logging.getLogger(__name__)

ALGORITHMS = frozenset({"ES256", "EdDSA", "RS256"})
MAX_BACKOFF = 5.0
# Keepalive on the verifier's channel, so a silently dead peer ends the watch
# stream; authsvc accepts pings no more often than every 10 s.
CHANNEL_OPTIONS = [("grpc.keepalive_time_ms", 15_000), ("grpc.keepalive_timeout_ms", 5_000),
                   ("grpc.keepalive_permit_without_calls", 0)]



def open_channel(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    return grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)



class LocalVerifier:
    """Verifies tokens locally and follows authsvc's revocations in real time.

    Runs two daemon threads (key set and revocation stream) on a sync channel,
    so it serves sync and aio servers alike. Use ``with LocalVerifier(...)``
    / ``async with``, or ``start()`` and ``close()``. Until the first key set
    and revocation snapshot arrive, every token is refused with UNAVAILABLE.
    """

    def __init__(self, target: str | grpc.Channel, *, issuer: str = "authsvc",
                 audience: str = "authsvc", algorithms: frozenset[str] = ALGORITHMS,
                 leeway: int = 30, max_staleness: float = 5.0,
                 revocation_window: float = 3600.0, cache_size: int = 10_000,
                 jwks_interval: float = 300.0, kid_refetch_interval: float = 5.0,
                 channel_credentials: grpc.ChannelCredentials | None = None,
                 timeout: float = 5.0, clock: Clock = system_clock,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._own_channel = isinstance(target, str)
        self._channel = open_channel(target, channel_credentials) if isinstance(target, str) \
            else target
        self._stub = auth_pb2_grpc.AuthStub(self._channel)
        self._rules = TokenRules(issuer=issuer, audience=audience,
                                 algorithms=frozenset(algorithms), leeway=leeway)
        self._clock = clock
        self._monotonic = monotonic
        self._timeout = timeout
        self._jwks_interval = jwks_interval
        self._kid_refetch_interval = kid_refetch_interval
        # revocation_window must cover authsvc's access-token lifetime plus leeway.
        self.revocations = RevocationSet(clock, revocation_window, max_staleness, monotonic)
        self._keys: dict[str, SigningKey] = {}
        self._cache = VerifiedTokens(cache_size)
        self._cache_lock = threading.Lock()
        self._kid_lock = threading.Lock()
        self._last_kid_fetch = -float("inf")
        self._stopping = threading.Event()
        self._keys_loaded = threading.Event()
        self._snapshot_seen = threading.Event()
        self._following = False
        self._call: Any = None
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------
    def start(self, timeout: float = 10.0) -> bool:
        """Start following authsvc; wait up to ``timeout`` s. True once ready."""
        if not self._threads:
            for target, name in ((self._follow_keys, "authsvc-jwks"),
                                 (self._follow_revocations, "authsvc-revocations")):
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)
        return self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return (self._keys_loaded.wait(timeout)
                and self._snapshot_seen.wait(max(0.0, deadline - time.monotonic())))

    @property
    def following(self) -> bool:
        """True while the revocation stream is up and its snapshot loaded."""
        return self._following

    def close(self) -> None:
        self._stopping.set()
        call = self._call
        if call is not None:
            call.cancel()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        if self._own_channel:
            self._channel.close()

    def __enter__(self) -> LocalVerifier:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> LocalVerifier:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)

    # --- verification ----------------------------------------------------
    def verify(self, token: str) -> AccessClaims:
        try:
            return self._check(token)
        except _UnknownKid as unknown:
            self._refetch_for(unknown.kid)
            return self._check(token, refetched=True)

    async def verify_async(self, token: str) -> AccessClaims:
        try:
            return self._check(token)
        except _UnknownKid as unknown:
            await asyncio.to_thread(self._refetch_for, unknown.kid)
            return self._check(token, refetched=True)

    def _check(self, token: str, refetched: bool = False) -> AccessClaims:
        if not token:
            raise TokenMissing()
        now = self._clock()
        claims = self._cache.get(token)
        if claims is not None:
            claims.check_times(now, self._rules.leeway)
        else:
            keys = self._keys
            try:
                claims = tokens.verify(token, keys.get, self._rules, now)
            except TokenInvalid:
                kid = _kid(token)
                if kid is not None and kid not in keys and not refetched:
                    raise _UnknownKid(kid) from None
                raise
            with self._cache_lock:
                self._cache.put(token, claims)
        revoked = self.revocations.is_revoked(claims.session_id)
        if revoked:
            raise TokenRevoked()
        if revoked is None:
            raise Unavailable("revocation feed is stale")
        return claims

    def _refetch_for(self, kid: str) -> None:
        """Refetch the key set for an unknown kid, at most once per interval."""
        with self._kid_lock:
            if kid in self._keys:
                return
            if self._monotonic() - self._last_kid_fetch < self._kid_refetch_interval:
                return
            self._last_kid_fetch = self._monotonic()
            try:
                self._fetch_keys()
            except grpc.RpcError as exc:
                log.warning("GetJwks failed: %s", exc.code())

    # --- background ------------------------------------------------------
    def _fetch_keys(self) -> None:
        response = self._stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=self._timeout)
        keys = {}
        for jwk in response.keys:
            key = _signing_key(jwk, self._rules.algorithms)
            if key is not None:
                keys[key.kid] = key
        self._keys = keys
        self._keys_loaded.set()

    def _follow_keys(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                self._fetch_keys()
                wait, backoff = self._jwks_interval, 0.1
            except grpc.RpcError as exc:
                log.warning("GetJwks failed: %s; retrying", exc.code())
                wait, backoff = _jitter(backoff), min(backoff * 2, MAX_BACKOFF)
            self._stopping.wait(wait)

    def _follow_revocations(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            self._call = call = self._stub.WatchRevocations(auth_pb2.WatchRevocationsRequest())
            try:
                for response in call:
                    if response.snapshot:
                        now = self._clock()
                        self.revocations.load({sid: now for sid in response.session_ids})
                        self._snapshot_seen.set()
                        self._following = True
                        backoff = 0.1
                    else:
                        self.revocations.add(list(response.session_ids))
                    self.revocations.prune()
            except grpc.RpcError as exc:
                if not self._stopping.is_set():
                    log.warning("WatchRevocations ended: %s; reconnecting", exc.code())
            finally:
                self._following = False
                self.revocations.lost()  # trusted for max_staleness more seconds
            self._stopping.wait(_jitter(backoff))
            backoff = min(backoff * 2, MAX_BACKOFF)


class _UnknownKid(Exception):
    def __init__(self, kid: str) -> None:
        self.kid = kid


def _kid(token: str) -> str | None:
    try:
        return tokens.unverified_kid(token)
    except TokenInvalid:
        return None


def _jitter(seconds: float) -> float:
    return seconds * (0.5 + random.random())  # noqa: S311 (backoff jitter, not a secret)


def _signing_key(message: auth_pb2.Jwk, algorithms: frozenset[str]) -> SigningKey | None:
    """A verify-only SigningKey from a published JWK; None if unusable here."""
    jwk = {f.name: v for f, v in message.ListFields()}
    if jwk.get("use", "sig") != "sig" or jwk.get("alg") not in algorithms or not jwk.get("kid"):
        return None
    try:
        public = jwt.PyJWK(jwk).key
    except (jwt.PyJWTError, ValueError, TypeError):
        log.warning("ignoring unusable JWK %s", jwk.get("kid"))
        return None
    return SigningKey(kid=jwk["kid"], alg=jwk["alg"], public_key=public, private_key=None,
                      jwk=jwk, created_at=0.0, activates_at=0.0, retired_at=None,
                      publish_until=None)
