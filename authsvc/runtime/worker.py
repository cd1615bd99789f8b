"""One worker: the whole service in this process, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import sys
from collections.abc import Callable

from ..config import Settings
from .app import running_app
from .logs import log_listening
from .startup import check_and_migrate
from .tracing import tracing_enabled


async def worker(settings: Settings, url: str, ready: Callable[[int], None] | None) -> None:
    """One worker: check the clock and migrate (safe while other workers do the same;
    the app makes sure a signing key exists), then serve until SIGTERM or SIGINT;
    ``ready(port)`` once listening (None: log it, as the only worker). Traced when an
    OTLP endpoint is set."""
    return_large_blocks()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await check_and_migrate(settings, url)
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


_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024


def return_large_blocks() -> None:
    """Make glibc give every block of 128 KiB or more its own mapping, returned to the
    system when freed. Its default threshold rises to the largest block freed so far,
    so after two argon2 hashes their 19 MiB (per hashing thread) stayed in the heap:
    an idle worker that had signed someone in held 80 MiB instead of 60. Setting the
    threshold once turns that adjustment off."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):  # AttributeError: not glibc
            ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
