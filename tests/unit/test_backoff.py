"""The one reconnect backoff (``authsvc.core.backoff``): doubling, capped, jittered."""

from __future__ import annotations

import random

import pytest

from authsvc.core import backoff as backoff_module
from authsvc.core.backoff import Backoff


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """random.random() fixed at 0.5, so each wait is exactly the nominal one."""
    monkeypatch.setattr(backoff_module.random, "random", lambda: 0.5)


def test_waits_double_from_initial_up_to_the_maximum(no_jitter):
    """Without jitter the waits are 0.1 s doubling each time, capped at 5 s."""
    backoff = Backoff()

    waits = [backoff.next() for _ in range(8)]

    assert waits == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]


def test_initial_and_maximum_are_parameters(no_jitter):
    """A Backoff(1, 3) waits 1, 2, then 3 s for ever."""
    backoff = Backoff(initial=1.0, maximum=3.0)

    waits = [backoff.next() for _ in range(4)]

    assert waits == [1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.5), (0.25, 0.75), (0.75, 1.25)])
def test_jitter_scales_the_wait_by_half_plus_the_random_draw(monkeypatch, draw, factor):
    """Each wait is the nominal one times 0.5 + random.random()."""
    monkeypatch.setattr(backoff_module.random, "random", lambda: draw)
    backoff = Backoff(initial=2.0, maximum=8.0)

    waits = [backoff.next() for _ in range(3)]

    assert waits == [2.0 * factor, 4.0 * factor, 8.0 * factor]


def test_jittered_waits_stay_within_50_to_150_percent(monkeypatch):
    """Drawing from a (seeded) random source, every wait is at least half and under one
    and a half times the nominal wait."""
    monkeypatch.setattr(backoff_module.random, "random", random.Random(17).random)
    backoffs = [Backoff(initial=1.0, maximum=1.0) for _ in range(2000)]

    waits = [b.next() for b in backoffs]

    assert all(0.5 <= w < 1.5 for w in waits)
    assert min(waits) < 0.55 and max(waits) > 1.45  # the whole range is used


def test_reset_starts_again_from_initial(no_jitter):
    """After reset() the next wait is the initial one again."""
    backoff = Backoff()
    for _ in range(5):
        backoff.next()

    backoff.reset()

    assert [backoff.next(), backoff.next()] == [0.1, 0.2]
