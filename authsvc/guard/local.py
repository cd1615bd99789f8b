"""LocalVerifier: access tokens checked in-process, revocations followed live.

It fetches the key set with ``GetJwks`` (again every ``jwks_interval``, and
on an unknown kid at most once per ``kid_refetch_interval``, so forged kids
cannot make it hammer authsvc), verifies with the same ``TokenCheck`` as
``Validate`` (``authsvc.core.verification``), and follows
``WatchRevocations`` into a ``RevocationSet``. authsvc sends a heartbeat
every second while its own set is current, so staleness counts from the
last message received: when the stream is silent (authsvc frozen, a dead
link keepalive has not noticed yet) or down (reconnecting with backoff, 0.1 s
doubling to 5 s, jittered), what the verifier has is trusted for
``max_staleness`` seconds after the last message, then every token is
refused with ``Unavailable`` (fail closed). ``max_staleness`` must be at
least 2 s (two heartbeats). Import it from ``authsvc.verifiers``.

The feed needs a credential (authsvc's ``transport.feed``): a client
certificate on a mutual-TLS channel, or ``access_token``, a callable that
returns a current access token with scope ``authsvc.revocations`` (e.g.
``SessionCredentials.sign_in(...).access_token`` for the service's own
account), sent as ``authorization: Bearer`` each time the stream (re)connects.

The token rules (``issuer``, ``audience``, ``algorithms``, ``leeway`` and
``max_token_lifetime``) come from authsvc: ``GetJwks`` publishes the ones
``Validate`` applies beside the keys (``guard.rules``), and the verifier
adopts them with each key set it fetches. A rule given to the constructor
wins over the published one, and a difference between the two is logged as a
warning, once per rule; an authsvc that publishes none leaves the given
values, or authsvc's defaults, in force. ``max_token_lifetime`` is authsvc's
access-token lifetime (``AUTHSVC_ACCESS_TOKEN_TTL``): a token living longer than
authsvc ever issues was minted with a stolen key, and is refused here as
``Validate`` refuses it. Revocations are kept for that lifetime plus three
leeways (``core.revocations.retention_window``, following the rules as they
are learnt), so clock skew between replicas within the leeway never brings a
revoked session back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

from ..clock import Clock, system_clock
from ..core.backoff import Backoff
from ..core.keys import KeyRing, verification_key
from ..core.revocations import RevocationSet, retention_window
from ..core.tokens import AccessClaims, TokenRules, UnknownKey
from ..core.verification import ReloadGate, TokenCheck
from ..errors import TokenRevoked, Unavailable
from ..tracing import guard_span
from ..v1 import auth_pb2, auth_pb2_grpc
from .channels import open_channel
from .rules import ACCESS_TOKEN_TTL, ALGORITHMS, GivenRules, RuleSource

log = logging.getLogger(__name__)

__all__ = ["ACCESS_TOKEN_TTL", "ALGORITHMS", "LocalVerifier"]


class LocalVerifier:
    """Verifies tokens locally and follows authsvc's revocations in real time.

    Runs two daemon threads (key set and revocation stream) on a sync channel,
    so it serves sync and aio servers alike. Use ``with LocalVerifier(...)``
    / ``async with``, or ``start()`` and ``close()``. Until the first key set
    and revocation snapshot arrive, every token is refused with UNAVAILABLE.

    ``issuer``, ``audience``, ``algorithms``, ``leeway`` (seconds) and
    ``max_token_lifetime`` (seconds) left as None are taken from the rules authsvc
    publishes with its key set; given, they win (a difference is logged once).
    ``revocation_window`` left as None follows the lifetime and leeway in force.
    """

    def __init__(self, target: str | grpc.Channel, *, issuer: str | None = None,
                 audience: str | None = None, algorithms: frozenset[str] | None = None,
                 leeway: int | None = None, max_staleness: float = 5.0,
                 max_token_lifetime: float | None = None,
                 revocation_window: float | None = None, cache_size: int = 10_000,
                 jwks_interval: float = 300.0, kid_refetch_interval: float = 5.0,
                 channel_credentials: grpc.ChannelCredentials | None = None,
                 access_token: Callable[[], str] | None = None,
                 timeout: float = 5.0, clock: Clock = system_clock,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._access_token = access_token
        self._own_channel = isinstance(target, str)
        self._channel = open_channel(target, channel_credentials) if isinstance(target, str) \
            else target
        self._stub = auth_pb2_grpc.AuthStub(self._channel)
        self._rules = RuleSource(GivenRules(
            issuer=issuer, audience=audience, leeway=leeway, max_lifetime=max_token_lifetime,
            algorithms=None if algorithms is None else frozenset(algorithms)))
        rules = self._rules.initial()
        self._ring = KeyRing([])
        self._cache_size = cache_size
        self._check = TokenCheck(rules, lambda kid: self._ring.get(kid), clock, cache_size)
        self._clock = clock
        self._timeout = timeout
        self._jwks_interval = jwks_interval
        self._kid_gate = ReloadGate(kid_refetch_interval, monotonic)
        self._kid_lock = threading.Lock()
        if max_staleness < 2.0:
            raise ValueError("max_staleness must be at least 2 s (authsvc's heartbeat is 1 s)")
        self._window_follows_rules = revocation_window is None
        window = retention_window(rules.max_lifetime, rules.leeway) \
            if revocation_window is None else revocation_window
        self.revocations = RevocationSet(window, max_staleness, monotonic)
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
        with guard_span("authsvc.guard.verify"):
            try:
                claims = self._check.claims(token)
            except UnknownKey as unknown:
                self._refetch_for(unknown.kid)
                claims = self._check.claims(token, keys_reloaded=True)
            return self._unrevoked(claims)

    async def verify_async(self, token: str) -> AccessClaims:
        with guard_span("authsvc.guard.verify"):
            try:
                claims = self._check.claims(token)
            except UnknownKey as unknown:
                await asyncio.to_thread(self._refetch_for, unknown.kid)
                claims = self._check.claims(token, keys_reloaded=True)
            return self._unrevoked(claims)

    def _unrevoked(self, claims: AccessClaims) -> AccessClaims:
        revoked = self.revocations.is_revoked(claims.session_id)
        if revoked:
            raise TokenRevoked()
        if revoked is None:
            raise Unavailable("revocation feed is stale")
        return claims

    def _refetch_for(self, kid: str) -> None:
        """Refetch the key set for an unknown kid, at most once per interval."""
        with self._kid_lock:
            if self._ring.get(kid) is not None or not self._kid_gate.due():
                return
            try:
                self._fetch_keys()
            except grpc.RpcError as exc:
                log.warning("GetJwks failed: %s", exc.code())

    @property
    def rules(self) -> TokenRules:
        """The token rules in force: the published ones, overridden by any given."""
        return self._check.rules

    # --- background ------------------------------------------------------
    def _fetch_keys(self) -> None:
        response = self._stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=self._timeout)
        rules = self._rules.resolve(response.rules if response.HasField("rules") else None)
        if rules != self._check.rules:  # a fresh cache: nothing verified under other rules
            self._check = TokenCheck(rules, lambda kid: self._ring.get(kid), self._clock,
                                     self._cache_size)
            if self._window_follows_rules:
                self.revocations.resize(retention_window(rules.max_lifetime, rules.leeway))
        published = (verification_key({f.name: v for f, v in jwk.ListFields()}, rules.algorithms)
                     for jwk in response.keys)
        self._ring = KeyRing(key for key in published if key is not None)
        self._keys_loaded.set()

    def _follow_keys(self) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                self._fetch_keys()
                backoff.reset()
                wait = self._jwks_interval
            except grpc.RpcError as exc:
                log.warning("GetJwks failed: %s; retrying", exc.code())
                wait = backoff.next()
            self._stopping.wait(wait)

    def _follow_revocations(self) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                metadata = (("authorization", f"Bearer {self._access_token()}"),) \
                    if self._access_token is not None else None
            except Exception as exc:  # the credentials cannot give a token now
                log.warning("no access token for WatchRevocations (%s); retrying",
                            type(exc).__name__)
                self._stopping.wait(backoff.next())
                continue
            self._call = call = self._stub.WatchRevocations(auth_pb2.WatchRevocationsRequest(),
                                                            metadata=metadata)
            if self._stopping.is_set():  # close() ran before it could see this call
                call.cancel()
            try:
                for response in call:
                    if response.snapshot:
                        self.revocations.load(dict.fromkeys(response.session_ids,
                                                            self.revocations.window))
                        self._snapshot_seen.set()
                        self._following = True
                        backoff.reset()
                    else:
                        self.revocations.add(list(response.session_ids))
                    self.revocations.prune()
            except grpc.RpcError as exc:
                if not self._stopping.is_set():
                    log.warning("WatchRevocations ended: %s; reconnecting", exc.code())
            finally:
                self._following = False
                self.revocations.lost()  # trusted until max_staleness after the last word
            self._stopping.wait(backoff.next())
