"""``authsvc`` with uvloop's event loop, to measure it against asyncio's own.

Run as ``python -m bench.uvloop_serve serve …``. The policy is set at import
time, so the workers, which multiprocessing's spawn starts by importing this
main module again, run on uvloop too.
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

if __name__ == "__main__":
    from authsvc.runtime.cli import main

    sys.exit(main())
