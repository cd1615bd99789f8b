"""Cancellation that cannot be lost.

Python 3.11's ``asyncio.wait_for`` (used inside libraries too: aiosmtplib,
asyncpg) can swallow a cancellation that arrives just as what it awaits
completes; the task then runs on, still marked as cancelling. A background
loop that would otherwise go round forever calls ``raise_if_cancelled`` each
round, so a shutdown's cancel always ends it. A library call that may wait
long after such a lost cancellation (an SMTP server that accepts, then never
greets) runs through ``cancellable``: the caller is never inside the library's
``wait_for``, so its cancellation always arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def raise_if_cancelled() -> None:
    """Raise CancelledError when this task was asked to stop and is still running."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancellable(work: Coroutine[Any, Any, T], abort: Callable[[], None]) -> T:
    """``work``'s result, awaited from a task of its own: when the caller is
    cancelled, it is at once, ``abort`` is called (it must make ``work`` end: drop
    its connection) and ``work`` is cancelled without being waited for."""
    child = asyncio.ensure_future(work)
    try:
        await asyncio.wait({child})
    except BaseException:
        abort()
        child.cancel()
        child.add_done_callback(_retrieved)
        raise
    return child.result()


def _retrieved(task: asyncio.Future[Any]) -> None:
    """An abandoned task's outcome, read so that asyncio does not log it as unread."""
    if not task.cancelled():
        task.exception()
