"""A software WebAuthn authenticator for the tests: real P-256 keys, real CBOR, real
signatures over what a browser would send (clientDataJSON, authenticatorData), so the
server's ``webauthn`` verification runs unchanged. It is what Chrome's CDP virtual
authenticator does, without a browser."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def from_b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


class Authenticator:
    """One discoverable credential, created by ``register``; ``count`` is its signature
    counter (it goes up by one per assertion); ``synced`` sets the backup flags."""

    def __init__(self, origin: str, *, synced: bool = False, user_verifying: bool = True,
                 ) -> None:
        self.origin = origin
        self.synced = synced
        self.user_verifying = user_verifying
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(16)
        self.user_handle = b""
        self.count = 0

    def clone(self) -> Authenticator:
        """A copy of the credential (same key, same counter from now on apart)."""
        twin = copy.copy(self)
        return twin

    def _flags(self) -> int:
        flags = UP | (UV if self.user_verifying else 0)
        return flags | (BE | BS if self.synced else 0)

    def register(self, options_json: str) -> str:
        """navigator.credentials.create() answered, as PublicKeyCredential JSON."""
        options = json.loads(options_json)
        self.user_handle = from_b64url(options["user"]["id"])
        numbers = self.key.public_key().public_numbers()
        cose = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})
        auth_data = (hashlib.sha256(options["rp"]["id"].encode()).digest()
                     + bytes([self._flags() | AT]) + self.count.to_bytes(4, "big")
                     + bytes(16) + len(self.credential_id).to_bytes(2, "big")
                     + self.credential_id + cose)
        client_data = self._client_data("webauthn.create", options["challenge"])
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps({
            "id": b64url(self.credential_id), "rawId": b64url(self.credential_id),
            "type": "public-key", "clientExtensionResults": {},
            "response": {"clientDataJSON": b64url(client_data),
                         "attestationObject": b64url(attestation),
                         "transports": ["internal"]}})

    def assert_(self, options_json: str, *, count: int | None = None,
                origin: str | None = None) -> str:
        """navigator.credentials.get() answered; the counter moves on by one, or is
        ``count`` as given."""
        options = json.loads(options_json)
        self.count = self.count + 1 if count is None else count
        auth_data = (hashlib.sha256(options["rpId"].encode()).digest()
                     + bytes([self._flags()]) + self.count.to_bytes(4, "big"))
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        response: dict[str, Any] = {"clientDataJSON": b64url(client_data),
                                    "authenticatorData": b64url(auth_data),
                                    "signature": b64url(signature),
                                    "userHandle": b64url(self.user_handle)}
        return json.dumps({"id": b64url(self.credential_id),
                           "rawId": b64url(self.credential_id), "type": "public-key",
                           "clientExtensionResults": {}, "response": response})

    def _client_data(self, kind: str, challenge: str, origin: str | None = None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge,
                           "origin": origin or self.origin, "crossOrigin": False}).encode()
