"""One worker: the whole service in this process, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from ..config import Settings, parse_listen
from .app import running_app
from .tracing import tracing_enabled

log = logging.getLogger("authsvc")


async def worker(settings: Settings, url: str, ready: Callable[[int], None] | None) -> None:
    """One worker: serve until SIGTERM or SIGINT; ``ready(port)`` once listening
    (None: log it, as the only worker). Traced when an OTLP endpoint is set."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with tracing_enabled():
        await _serve(settings, url, ready, stop)


async def _serve(settings: Settings, url: str, ready: Callable[[int], None] | None,
                 stop: asyncio.Event) -> None:
    from .server import running_server

    async with running_app(settings, url) as app, \
            running_server(app, settings.listen) as (_server, port):
        if ready is None:
            log_listening(settings.listen, port, 1)
        else:
            ready(port)
        await stop.wait()


def log_listening(listen: str, port: int, workers: int) -> None:
    """The start-up line, with what a first-time operator does next."""
    address = where(listen, port)
    log.info("listening on %s (%d worker%s)", address, workers, "" if workers == 1 else "s",
             extra={"fields": {
                 "next": "add a user: authsvc users add --email you@example.com "
                         "--password-stdin; HTTP/JSON: scripts/gateway --upstream " + address}})


def where(listen: str, port: int) -> str:
    host, _ = parse_listen(listen)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
