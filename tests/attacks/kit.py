"""The shared server of the forged-token and request attacks (``kit``), and the exact
answers those attacks get.

A ``Kit`` is one authsvc running on its own database and event loop (a
``BackgroundService``) with alice and bob signed in, plus an attacker's own key.
Its fixture (``tests/attacks/conftest.py``) starts one per module: no case may
change its state, which is exactly what ``Kit.present`` asserts.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric import ec

from authsvc.v1 import auth_pb2, auth_pb2_grpc

from .attack_helpers import BackgroundService, Parts, refused

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
INVALID_TOKEN = (UNAUTHENTICATED, "TOKEN_INVALID")
INVALID_TOKEN_CHALLENGE = ('Bearer realm="authsvc", error="invalid_token", '
                           'error_description="The access token is invalid"')
INVALID_REQUEST_CHALLENGE = ('Bearer realm="authsvc", error="invalid_request", '
                             'error_description="The authorization metadata must hold '
                             'exactly one Bearer token"')
NO_TOKEN_CHALLENGE = 'Bearer realm="authsvc"'


@dataclasses.dataclass
class Kit:
    """A running authsvc with alice and bob signed in, and an attacker's own key."""

    service: BackgroundService
    alice: auth_pb2.SignInResponse
    bob: auth_pb2.SignInResponse
    attacker: ec.EllipticCurvePrivateKey

    @property
    def stub(self) -> auth_pb2_grpc.AuthStub:
        return self.service.stub

    @property
    def now(self) -> int:
        return int(self.service.clock())

    @property
    def signer(self) -> Any:
        return self.service.app.keystore.ring.signer(self.service.clock())

    @property
    def genuine(self) -> Parts:
        """Alice's real access token, taken apart."""
        return Parts.of(self.alice.access_token)

    def ours(self, header: dict[str, Any] | None = None, **claims: Any) -> str:
        """A token signed with the service's own key: alice's claims, in a session of
        its own, with ``claims`` and header members ``header`` changed (DELETE removes
        one). Only the service can make these: they test its strictness, not forgery."""
        parts = self.genuine.with_claims(sid=str(uuid.uuid4())).with_claims(**claims)
        parts = parts.with_header(**(header or {}))
        return parts.signed(self.signer.alg, self.signer.private_key)

    def sign_in_refused(self, **request: str) -> Any:
        return refused(lambda: self.stub.SignIn(auth_pb2.SignInRequest(**request)))

    def fetchval(self, sql: str, *args: Any) -> Any:
        async def fetch() -> Any:
            async with self.service.app.db.connection() as conn:
                return await conn.fetchval(sql, *args)

        return self.service.run(fetch())

    def present(self, token: str) -> Any:
        """Validate ``token``, then offer it to Revoke (RFC 7009: always OK); assert that
        neither changed the database; return what Validate said."""
        before = self.service.snapshot()
        failure = refused(lambda: self.stub.Validate(
            auth_pb2.ValidateRequest(access_token=token), timeout=10))
        self.stub.Revoke(auth_pb2.RevokeRequest(token=token), timeout=10)
        assert self.service.snapshot() == before, "an attack changed the database"
        return failure


def assert_invalid(failure: Any) -> None:
    assert (failure.code, failure.reason) == INVALID_TOKEN
    assert failure.challenge == INVALID_TOKEN_CHALLENGE
