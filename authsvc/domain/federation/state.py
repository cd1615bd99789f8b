"""Provider sign-in flows that write nothing until the provider's callback arrives.

``StartProviderSignIn`` is public and unauthenticated, so a row per call would let
anyone fill a table. Instead the flow travels in its ``state``: what Start decided
(provider, OIDC nonce, PKCE verifier or the app's challenge, the hash of the
flow_id that binds it to its starter, which redirect_uri, where to go after, the
user a link flow is for, and its expiry by this replica's clock) is encrypted with
AES-256-GCM under a key derived from the key-encryption key (every replica derives
the same one, none is stored). The encryption keeps the PKCE verifier secret from
the browser and the provider (the state travels through both) and makes a state
that was not issued here, or was altered, unreadable.

A state is spent by the finish that opens it: one INSERT of its hash into
``federation_spent_flows`` that also checks its expiry by the database's clock
(``store.identities.spend_flow``), so it answers once, on any replica. The
encoding is canonical (unpadded base64url, re-encoded and compared), so one state
has one hash and cannot be replayed under another spelling.

Layout of the sealed data (versioned by the envelope's first byte, see
``keycrypto.encrypt``): flags (1), expires_at (8, Unix seconds), index of the
redirect_uri among the provider's (1), provider id (1 + up to 32), binding hash
(32), nonce (16), verifier or challenge (32), link user id (16, when flagged),
redirect_to (the rest, when flagged). A flow without redirect_to or link is a
state of about 170 characters; each character of redirect_to adds about 1.4.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ...clock import Clock
from ...core.b64 import b64url, unb64url
from ..keycrypto import derive_key, encrypt

_ENVELOPE_VERSION = 1
_GCM_NONCE = 12
_ASSOCIATED = b"authsvc federation state v1"
_APP_CHALLENGE, _LINK, _REDIRECT_TO = 1, 2, 4
_FIXED = struct.Struct(">BQB")
MAX_STATE = 4096
"""Longest state Finish reads: the seal of a flow with the longest redirect_to
(2048 characters) fits with room to spare."""


@dataclass(frozen=True, slots=True)
class Flow:
    """What a flow's start decided, as its state carries it."""

    provider: str
    binding_hash: bytes
    nonce: str
    verifier: str | None
    """authsvc's PKCE verifier; None when the app sent its own challenge."""
    challenge: str
    redirect_uri_index: int
    redirect_to: str | None
    link_user_id: str | None
    expires_at: int
    """Unix seconds, by the starting replica's clock; the database judges it."""


@dataclass(frozen=True, slots=True)
class Opened:
    """A state this service issued: its flow and the hash it is spent under."""

    flow: Flow
    state_hash: bytes


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier`` (RFC 7636)."""
    return b64url(hashlib.sha256(verifier.encode()).digest())


class SealedFlows:
    def __init__(self, key_encryption_key: bytes, clock: Clock, ttl: int) -> None:
        self._aead = AESGCM(derive_key(key_encryption_key, b"authsvc federation flow state v1"))
        self._clock = clock
        self.ttl = ttl

    def start(self, *, provider: str, binding_hash: bytes, app_challenge: str | None,
              redirect_uri_index: int, redirect_to: str | None,
              link_user_id: str | None) -> tuple[str, Flow]:
        """A new flow (fresh nonce; a fresh verifier unless the app sent its challenge)
        and the state that carries it."""
        nonce = os.urandom(16)
        if app_challenge is None:
            pkce = os.urandom(32)
            verifier: str | None = b64url(pkce)
            challenge = s256(b64url(pkce))
        else:
            pkce = base64.urlsafe_b64decode(app_challenge + "=")
            verifier, challenge = None, b64url(pkce)
        flags = ((_APP_CHALLENGE if verifier is None else 0)
                 | (_LINK if link_user_id is not None else 0)
                 | (_REDIRECT_TO if redirect_to else 0))
        expires_at = int(self._clock()) + self.ttl
        provider_id = provider.encode()
        data = (_FIXED.pack(flags, expires_at, redirect_uri_index)
                + bytes([len(provider_id)]) + provider_id + binding_hash + nonce + pkce
                + (uuid.UUID(link_user_id).bytes if link_user_id is not None else b"")
                + (redirect_to.encode() if redirect_to else b""))
        state = b64url(encrypt(self._aead, data, _ASSOCIATED))
        flow = Flow(provider, binding_hash, b64url(nonce), verifier, challenge,
                    redirect_uri_index, redirect_to or None, link_user_id, expires_at)
        return state, flow

    def open(self, state: str) -> Opened | None:
        """The flow ``state`` carries, if this service sealed it (whatever its age: its
        expiry is for the database to judge when it is spent); None otherwise."""
        raw = unb64url(state)
        if raw is None or len(raw) < 1 + _GCM_NONCE + 16 or raw[0] != _ENVELOPE_VERSION:
            return None
        try:
            data = self._aead.decrypt(raw[1:1 + _GCM_NONCE], raw[1 + _GCM_NONCE:], _ASSOCIATED)
        except InvalidTag:
            return None
        flags, expires_at, index = _FIXED.unpack_from(data)
        at = _FIXED.size
        provider = data[at + 1:at + 1 + data[at]].decode()
        at += 1 + data[at]
        binding_hash, nonce, pkce = data[at:at + 32], data[at + 32:at + 48], data[at + 48:at + 80]
        at += 80
        link_user_id = None
        if flags & _LINK:
            link_user_id, at = str(uuid.UUID(bytes=data[at:at + 16])), at + 16
        redirect_to = data[at:].decode() if flags & _REDIRECT_TO else None
        verifier = None if flags & _APP_CHALLENGE else b64url(pkce)
        challenge = b64url(pkce) if verifier is None else s256(verifier)
        flow = Flow(provider, binding_hash, b64url(nonce), verifier, challenge, index,
                    redirect_to, link_user_id, expires_at)
        return Opened(flow, hashlib.sha256(raw).digest())
