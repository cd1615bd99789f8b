"""One worker: the whole service in this process, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from ..config import Settings
from .app import running_app
from .logs import log_listening
from .server import running_server
from .startup import check_and_migrate
from .tracing import tracing_enabled


async def worker(settings: Settings, url: str, ready: Callable[[int], None] | None,
                 *, first: bool = True) -> None:
    """One worker: check the clock and migrate (safe while other workers do the same;
    the app makes sure a signing key exists), then serve until SIGTERM or SIGINT;
    ``ready(port)`` once listening (None: log it, as the only worker). Traced when an
    OTLP endpoint is set. The ``first`` worker of a replica also checks that the
    database has room for the replica's connections (one warning, not one per
    worker)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await check_and_migrate(settings, url, check_budget=first)
    with tracing_enabled():
        await _serve(settings, url, ready, stop)


async def _serve(settings: Settings, url: str, ready: Callable[[int], None] | None,
                 stop: asyncio.Event) -> None:
    async with running_app(settings, url) as app, \
            running_server(app, settings.listen) as (_server, port):
        if ready is None:
            log_listening(settings.listen, port, 1)
        else:
            ready(port)
        await stop.wait()
