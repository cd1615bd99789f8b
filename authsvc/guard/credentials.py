"""Client credentials: call other services as a signed-in authsvc user.

    credentials = SessionCredentials.sign_in("authsvc:50051", email="svc@example.com",
                                             password=password)
    channel = grpc.aio.secure_channel("orders:443", grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(), credentials.call_credentials()))

The credentials sign in once (the password is not kept), attach
``authorization: Bearer <access token>`` to every call, and refresh the
access token ``refresh_before`` seconds before it expires. However many calls
are waiting, one Refresh is in flight: while the current token is still
valid the other calls go on with it, and only calls that would otherwise send
an expired token wait for the refresh.

When the session is gone (revoked, disabled user, expired, or its refresh
token refused) every later call fails with ``SessionEnded``: calls through
the channel fail with the plugin error (gRPC reports it as status
UNAVAILABLE with "SessionEnded: …" in the details; ``session_ended(error)``
tells); ``access_token()`` raises it
directly, and ``ended`` holds it. The credentials never sign in again on
their own, so revoking the session really stops the client.

gRPC calls a metadata plugin on its own threads, for sync and aio channels
alike, so the state is guarded by a ``threading.Lock`` and authsvc is called
through a sync channel. Call credentials need a secure channel: TLS, or
``grpc.local_channel_credentials()`` on loopback.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import grpc

from ..clock import Clock, system_clock
from ..errors import AuthsvcError, Unavailable
from ..v1 import auth_pb2, auth_pb2_grpc
from .channels import open_channel
from .status import reason_of

log = logging.getLogger(__name__)


class SessionEnded(AuthsvcError):
    """The session behind these credentials is gone; sign in again to go on.

    Its text starts with ``SessionEnded:``, also in the details of a call that
    failed because of it (see ``session_ended``).
    """

    def __str__(self) -> str:
        return f"SessionEnded: {super().__str__()}"


def session_ended(error: grpc.RpcError) -> bool:
    """Whether a failed call failed because these credentials' session ended."""
    details = error.details() if hasattr(error, "details") else None
    return isinstance(details, str) and "SessionEnded:" in details


@dataclass(frozen=True, slots=True)
class _Tokens:
    access_token: str
    refresh_token: str
    session_id: str
    user_id: str
    expires_at: float
    refresh_at: float


class SessionCredentials(grpc.AuthMetadataPlugin):  # type: ignore[misc]
    """A metadata plugin holding one authsvc session."""

    def __init__(self, channel: grpc.Channel, signed_in: auth_pb2.SignInResponse, *,
                 sent_at: float, refresh_before: float = 60.0, retry_interval: float = 1.0,
                 timeout: float = 5.0, clock: Clock = system_clock,
                 own_channel: bool = False) -> None:
        self._channel = channel
        self._own_channel = own_channel
        self._stub = auth_pb2_grpc.AuthStub(channel)
        self._refresh_before = refresh_before
        self._retry_interval = retry_interval
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._retry_at = -float("inf")
        self.ended: SessionEnded | None = None
        self._tokens = self._tokens_of(signed_in, sent_at)

    @classmethod
    def sign_in(cls, target: str | grpc.Channel, *, password: str, email: str | None = None,
                phone: str | None = None, username: str | None = None,
                channel_credentials: grpc.ChannelCredentials | None = None,
                **options: Any) -> SessionCredentials:
        """Sign in once; raises grpc.RpcError (e.g. UNAUTHENTICATED) when that fails."""
        own = isinstance(target, str)
        channel = (open_channel(target, channel_credentials) if isinstance(target, str)
                   else target)
        clock: Clock = options.get("clock", system_clock)
        given = {k: v for k, v in (("email", email), ("phone", phone), ("username", username))
                 if v is not None}
        if len(given) != 1:
            raise ValueError("pass exactly one of email, phone or username")
        request = auth_pb2.SignInRequest(password=password, **given)
        sent_at = clock()
        try:
            signed_in = auth_pb2_grpc.AuthStub(channel).SignIn(
                request, timeout=options.get("timeout", 5.0))
        except BaseException:
            if own:
                channel.close()
            raise
        return cls(channel, signed_in, sent_at=sent_at, own_channel=own, **options)

    @property
    def session_id(self) -> str:
        return self._tokens.session_id

    @property
    def user_id(self) -> str:
        return self._tokens.user_id

    def call_credentials(self) -> grpc.CallCredentials:
        return grpc.metadata_call_credentials(self, name="authsvc")

    def __call__(self, context: grpc.AuthMetadataContext,
                 callback: grpc.AuthMetadataPluginCallback) -> None:
        try:
            token = self.access_token()
        except Exception as exc:
            callback((), exc)
            return
        callback((("authorization", f"Bearer {token}"),), None)

    def access_token(self) -> str:
        """A valid access token, refreshed if due. Raises SessionEnded, or
        Unavailable when the token has expired and authsvc cannot refresh it."""
        while True:
            if self.ended is not None:
                raise self.ended
            tokens, now = self._tokens, self._clock()
            if now < tokens.refresh_at:
                return tokens.access_token
            usable = now < tokens.expires_at
            if usable and now < self._retry_at:
                return tokens.access_token  # the last refresh failed just now
            # One caller refreshes; the others go on with a still valid token
            # and wait only when theirs would be expired.
            if not self._lock.acquire(blocking=not usable):
                return tokens.access_token
            try:
                if self._tokens is tokens and self.ended is None:
                    if not usable and self._clock() < self._retry_at:
                        raise Unavailable("authsvc could not refresh the access token")
                    self._refresh(tokens)
                    if self._tokens is tokens:  # failed, but the token still holds
                        return tokens.access_token
            finally:
                self._lock.release()

    def sign_out(self) -> None:
        """Revoke the session; later calls raise SessionEnded."""
        with self._lock:
            if self.ended is None:
                self._stub.Revoke(auth_pb2.RevokeRequest(
                    token=self._tokens.refresh_token,
                    token_type_hint=auth_pb2.TOKEN_TYPE_HINT_REFRESH_TOKEN),
                    timeout=self._timeout)
                self.ended = SessionEnded("the session was signed out")

    def close(self) -> None:
        if self._own_channel:
            self._channel.close()

    def _refresh(self, tokens: _Tokens) -> None:
        """With the lock held: one Refresh; on success replace the tokens."""
        sent_at = self._clock()
        try:
            response = self._stub.Refresh(
                auth_pb2.RefreshRequest(refresh_token=tokens.refresh_token),
                timeout=self._timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                reason = reason_of(exc) or exc.code().name
                self.ended = SessionEnded(f"the authsvc session ended ({reason}); sign in again")
                raise self.ended from None
            self._retry_at = self._clock() + self._retry_interval
            log.warning("refreshing the access token failed: %s", exc.code())
            if self._clock() >= tokens.expires_at:
                raise Unavailable("authsvc could not refresh the access token") from None
            return
        self._tokens = self._tokens_of(response, sent_at)

    def _tokens_of(self, response: auth_pb2.SignInResponse | auth_pb2.RefreshResponse,
                   sent_at: float) -> _Tokens:
        expires_at = sent_at + response.expires_in
        margin = min(self._refresh_before, response.expires_in / 2)
        return _Tokens(access_token=response.access_token, refresh_token=response.refresh_token,
                       session_id=response.session_id, user_id=response.user_id,
                       expires_at=expires_at, refresh_at=expires_at - margin)
