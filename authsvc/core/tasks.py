"""Cancellation that cannot be lost.

Python 3.11's ``asyncio.wait_for`` (used inside libraries too: aiosmtplib,
asyncpg) can swallow a cancellation that arrives just as what it awaits
completes; the task then runs on, still marked as cancelling. A background
loop that would otherwise go round forever calls ``raise_if_cancelled`` each
round, so a shutdown's cancel always ends it.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Raise CancelledError when this task was asked to stop and is still running."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
