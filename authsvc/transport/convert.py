"""Between protobuf and the domain, in one place: token responses, timestamps, the
identifier oneof, and who is calling."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from ..domain.caller import Caller
from ..domain.tokens.issuer import TokenPair
from .metadata import Networks, caller

TOKEN_TYPE = "Bearer"  # noqa: S105 (the OAuth token_type, not a secret)


def token_fields(pair: TokenPair) -> dict[str, Any]:
    """The OAuth 2.0 token response fields every way of signing in answers."""
    return {"access_token": pair.access_token, "token_type": TOKEN_TYPE,
            "expires_in": pair.expires_in, "refresh_token": pair.refresh_token,
            "refresh_expires_in": pair.refresh_expires_in, "session_id": pair.session_id,
            "user_id": pair.user_id}


def timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def identifier(request: Message) -> tuple[str | None, str]:
    """The ``identifier`` oneof: (email|phone|username, its value), or (None, "")."""
    kind = request.WhichOneof("identifier")
    return kind, getattr(request, kind) if kind else ""


class Callers:
    """Who is calling, as the domain sees it: the client's address (through trusted
    proxies only) and user agent."""

    def __init__(self, trusted_proxies: Networks) -> None:
        self._proxies = trusted_proxies

    def __call__(self, context: grpc.aio.ServicerContext) -> Caller:
        return caller(context.invocation_metadata(), context.peer(), self._proxies)
