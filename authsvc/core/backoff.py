"""One backoff for every reconnect loop: doubling, capped, jittered."""

from __future__ import annotations

import random

INITIAL = 0.1
MAXIMUM = 5.0


class Backoff:
    """Seconds to wait before the next attempt: ``initial`` doubling to ``maximum``,
    each wait jittered to 50-150 % so reconnecting clients do not move in step."""

    def __init__(self, initial: float = INITIAL, maximum: float = MAXIMUM) -> None:
        self._initial = initial
        self._maximum = maximum
        self._next = initial

    def reset(self) -> None:
        """The last attempt succeeded: start again from ``initial``."""
        self._next = self._initial

    def next(self) -> float:
        """The wait before the next attempt; the one after is twice as long."""
        wait = self._next * (0.5 + random.random())  # noqa: S311 (jitter, not a secret)
        self._next = min(self._next * 2, self._maximum)
        return wait
