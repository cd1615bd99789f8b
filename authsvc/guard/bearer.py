"""The bearer token of a call: exactly one ``authorization: Bearer …`` value."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import TokenInvalid

_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*)")


class MalformedAuthorization(TokenInvalid):
    """Two ``authorization`` values, another scheme, or a malformed Bearer value."""

    error = "invalid_request"
    message = "The authorization metadata must hold exactly one Bearer token."


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The token from the single ``authorization: Bearer …`` value; None if absent."""
    values = [v for k, v in (metadata or ()) if k == "authorization"]
    if not values:
        return None
    if len(values) > 1 or not isinstance(values[0], str):
        raise MalformedAuthorization()
    match = _BEARER.fullmatch(values[0])
    if match is None:
        raise MalformedAuthorization()
    return match.group(1)
