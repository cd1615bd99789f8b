"""One connection attempt per host of a multi-host PostgreSQL URL.

``postgresql://h1:5432,h2:5432/db?target_session_attrs=read-write`` names a
primary and its standby. asyncpg tries the hosts one after the other under a
single timeout, so a host that accepts the TCP connection and then never
answers (a frozen server, a black-holed network) uses up the whole timeout and
the next host is never asked: no failover while the old primary hangs.

Here every host gets an attempt of its own, with the whole connect timeout to
itself. The attempts start in the URL's order: the next one starts as soon as
the one before has failed, or has not answered within a short stagger, so a
healthy first host is still the one chosen, and a hanging one delays the next
by the stagger only. The first attempt that connects and satisfies
``target_session_attrs`` wins; the others are cancelled, and a connection that
arrives after all is closed. If every attempt fails, the most telling error is
raised: a mistake in the URL (authentication, database name) before "nothing
answers".

A URL with a single host, or with ``target_session_attrs=prefer-standby``
(which has to see every host before it chooses), goes to asyncpg unchanged.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

# The longest a host that has not answered yet holds up the next one.
MAX_STAGGER = 0.5


@dataclass(frozen=True, slots=True)
class Host:
    """One host of a URL: a name, an address or a Unix socket directory, and
    its port (None: asyncpg's default, PGPORT or 5432)."""

    host: str
    port: int | None


def hosts_of(url: str) -> list[Host]:
    """The hosts a PostgreSQL URL names, in order: ``h1:p1,h2:p2`` (IPv6 in
    brackets) in the authority, else the ``host=`` and ``port=`` parameters
    (comma-separated lists, or one port for every host). Empty when the URL
    names no host (asyncpg's defaults then decide)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    spec = parts.netloc.rpartition("@")[2]
    ports = [p for p in ",".join(query.get("port", [])).split(",") if p]
    if spec:
        found = [_hostspec(entry) for entry in spec.split(",")]
    else:
        found = [Host(h, None) for h in ",".join(query.get("host", [])).split(",") if h]
    if not ports:
        return found
    if len(ports) == 1:
        ports = ports * len(found)
    return [Host(h.host, h.port if h.port is not None or i >= len(ports) else int(ports[i]))
            for i, h in enumerate(found)]


def _hostspec(entry: str) -> Host:
    if entry.startswith("["):  # [IPv6]:port
        address, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
    else:  # a name, an IPv4 address, or a percent-encoded socket directory
        address, _, port = entry.partition(":")
    return Host(unquote(address), int(unquote(port)) if port else None)


def _target_session_attrs(url: str) -> str:
    query = parse_qs(urlsplit(url).query)
    return (query.get("target_session_attrs") or [os.environ.get("PGTARGETSESSIONATTRS", "")])[0]


def stagger(timeout: float, hosts: int) -> float:
    """How long an attempt that has not answered holds up the next: short
    enough that every host has been asked by half the connect timeout."""
    return min(MAX_STAGGER, timeout / (2 * max(hosts - 1, 1)))


async def connect(dsn: str, **kwargs: Any) -> asyncpg.Connection:
    """``asyncpg.connect(dsn, **kwargs)``, with one attempt (and one ``timeout``)
    per host. Also the pool's connection factory (``create_pool(connect=…)``),
    which passes the pool's connection class and settings in ``kwargs``."""
    hosts = hosts_of(dsn)
    if len(hosts) < 2 or _target_session_attrs(dsn) == "prefer-standby":
        return await asyncpg.connect(dsn, **kwargs)
    timeout = float(kwargs.get("timeout", 60))
    return await _first_to_connect(dsn, hosts, stagger(timeout, len(hosts)), kwargs)


async def _first_to_connect(dsn: str, hosts: Sequence[Host], delay: float,
                            kwargs: dict[str, Any]) -> asyncpg.Connection:
    waiting = list(hosts)
    attempts: dict[asyncio.Task[asyncpg.Connection], int] = {}
    errors: list[tuple[int, BaseException]] = []

    def start_next() -> None:
        if waiting:
            host = waiting.pop(0)
            attempt = asyncio.ensure_future(
                asyncpg.connect(dsn, host=host.host, port=host.port, **kwargs))
            attempts[attempt] = len(hosts) - len(waiting) - 1

    start_next()
    try:
        while attempts:
            done, _ = await asyncio.wait(attempts, timeout=delay,
                                         return_when=asyncio.FIRST_COMPLETED)
            if not done:
                start_next()  # the ones before are slow: ask the next as well
                continue
            connected = []
            for attempt in done:
                order = attempts.pop(attempt)
                failure = attempt.exception()
                if failure is None:
                    connected.append((order, attempt.result()))
                else:
                    errors.append((order, failure))
                    start_next()
            if connected:
                connected.sort(key=lambda pair: pair[0])
                for _, extra in connected[1:]:
                    extra.terminate()
                return connected[0][1]
        raise _most_telling(errors)
    finally:
        for attempt in attempts:
            attempt.cancel()
            attempt.add_done_callback(_close_late_arrival)


def _close_late_arrival(attempt: asyncio.Task[asyncpg.Connection]) -> None:
    """An attempt cancelled because another host won: close what it got, if it
    got a connection before the cancellation reached it."""
    if not attempt.cancelled() and attempt.exception() is None:
        attempt.result().terminate()


def _most_telling(errors: list[tuple[int, BaseException]]) -> BaseException:
    """A mistake in the URL (wrong password, no such database) says more than
    a host that does not answer; among equals, the first host's error."""
    def rank(pair: tuple[int, BaseException]) -> tuple[int, int]:
        order, error = pair
        wrong_url = isinstance(error, (asyncpg.ClientConfigurationError,
                                       asyncpg.InvalidAuthorizationSpecificationError,
                                       asyncpg.InvalidCatalogNameError))
        return (0 if wrong_url else 1, order)
    return min(errors, key=rank)[1]
