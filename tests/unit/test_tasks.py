"""A background loop ends when cancelled even if something inside it swallowed the
cancellation (as Python 3.11's asyncio.wait_for can, in libraries too)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from authsvc.core.tasks import raise_if_cancelled


async def test_a_swallowed_cancel_still_ends_the_loop():
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            raise_if_cancelled()
            rounds += 1
            with contextlib.suppress(asyncio.CancelledError):  # swallowed, as wait_for can
                await asyncio.sleep(0)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert rounds == 1  # the round that swallowed it; the next check ended the loop


async def test_a_task_not_asked_to_stop_goes_on():
    raise_if_cancelled()  # nothing raised
