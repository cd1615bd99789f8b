"""Reading request metadata: the bearer token and who is calling."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import TokenInvalid
from ..sessions import Caller

MAX_USER_AGENT = 256
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*)")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


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


def caller(metadata: Iterable[tuple[str, str | bytes]] | None, peer: str) -> Caller:
    """Client address (from the transport peer) and a sanitised user agent."""
    agent = next((v for k, v in (metadata or ()) if k == "user-agent"), None)
    agent = _UNPRINTABLE.sub("?", agent[:MAX_USER_AGENT]) if isinstance(agent, str) else None
    return Caller(client_addr=peer_address(peer), user_agent=agent)


def peer_address(peer: str) -> str | None:
    """``ipv4:1.2.3.4:5`` → ``1.2.3.4``; ``ipv6:[::1]:5`` → ``::1``; else None."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or None
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]") or None
    if kind == "unix":
        return "unix"
    return None
