"""``authsvc`` with uvloop's event loop, to measure it against asyncio's own.

Run as ``python -m bench.uvloop_serve serve --workers 1 …``: the policy is set
at import time, in this process only, so it is for one worker (several are
started as ``python -m authsvc.runtime.child``, on asyncio's own loop;
``bench.service.Service`` refuses that combination).
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

if __name__ == "__main__":
    from authsvc.runtime.cli import main

    sys.exit(main())
