"""Who is calling: client address (trusted-proxy aware) and user agent."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from ..domain.caller import Caller

MAX_USER_AGENT = 256
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def caller(metadata: Iterable[tuple[str, str | bytes]] | None, peer: str,
           trusted_proxies: Networks = ()) -> Caller:
    """Client address and a sanitised user agent.

    The address and user agent are the transport peer's, except when the peer
    is a trusted proxy: then the address is the right-most ``x-forwarded-for``
    hop (the address the proxy itself saw; hops further left are the client's
    claims) and the user agent the one it forwards as ``x-forwarded-user-agent``
    (the gateway does). From anyone else both headers are ignored.
    """
    pairs = list(metadata or ())
    agent_key = "user-agent"
    address = peer_address(peer)
    if address is not None and trusted_proxies and _within(address, trusted_proxies):
        hops = [hop.strip() for k, v in pairs if k == "x-forwarded-for" and isinstance(v, str)
                for hop in v.split(",")]
        if hops and _is_ip(hops[-1]):
            address = str(ipaddress.ip_address(hops[-1]))
        if any(k == "x-forwarded-user-agent" for k, _ in pairs):
            agent_key = "x-forwarded-user-agent"
    agent = next((v for k, v in pairs if k == agent_key), None)
    agent = _UNPRINTABLE.sub("?", agent[:MAX_USER_AGENT]) if isinstance(agent, str) else None
    return Caller(client_addr=address, user_agent=agent)


Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def networks(specs: Iterable[str]) -> Networks:
    return tuple(ipaddress.ip_network(spec, strict=False) for spec in specs)


def _within(address: str, trusted: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


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
