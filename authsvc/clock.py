"""Time, injected: whatever issues or checks tokens asks a Clock, not time.time()."""

from __future__ import annotations

import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Protocol

# When the RPC being answered must have its answer, in the event loop's time
# (time.monotonic); None outside a call, or when the client set no deadline.
# The store bounds database work by it, so a client hears UNAVAILABLE, not
# DEADLINE_EXCEEDED, when the database is too slow.
call_deadline: ContextVar[float | None] = ContextVar("authsvc_call_deadline", default=None)


class Clock(Protocol):
    def __call__(self) -> float:
        """Seconds since the epoch, UTC."""
        ...


def system_clock() -> float:
    """The real clock."""
    return time.time()


def to_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class FakeClock:
    """A clock that moves only when told to; for tests and benchmarks."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
