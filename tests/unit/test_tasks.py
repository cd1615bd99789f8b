"""A background loop ends when cancelled even if something inside it swallowed the
cancellation (as Python 3.11's asyncio.wait_for can, in libraries too)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from authsvc.core.tasks import cancellable, raise_if_cancelled


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


async def test_a_cancel_swallowed_inside_the_work_still_ends_its_caller_at_once():
    """The work loses the cancellation (as aiosmtplib's wait_for can as a connection
    opens) and then waits on: its caller is cancelled all the same, without waiting
    for it, and ``abort`` is what makes the work end."""
    started, released = asyncio.Event(), asyncio.Event()
    outcome: list[str] = []

    async def work() -> str:
        started.set()
        with contextlib.suppress(asyncio.CancelledError):  # lost, as wait_for can
            await asyncio.sleep(3600)
        await released.wait()  # a greeting that never comes, until the connection drops
        outcome.append("ended")
        return "never read"

    caller = asyncio.create_task(cancellable(work(), released.set))
    await started.wait()
    caller.cancel()

    with pytest.raises(asyncio.CancelledError):
        await caller
    assert released.is_set()  # aborted
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert outcome == ["ended"]


async def test_the_works_answer_and_its_error_come_back_to_the_caller():
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def failing() -> int:
        await asyncio.sleep(0)
        raise ValueError("refused")

    assert await cancellable(answer(), lambda: None) == 42
    with pytest.raises(ValueError, match="refused"):
        await cancellable(failing(), lambda: None)
