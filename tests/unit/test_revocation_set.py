"""The set of recently revoked sessions (``authsvc.core.revocations``): what it
answers, for how long it trusts itself, and what its watchers receive. The wall
monotonic clock is injected; the wall clock plays no part (replicas' wall clocks
disagree, so how long a revocation is kept is counted on the monotonic clock from
when it arrived, or from what the database says is left of it)."""

from __future__ import annotations

import pytest

from authsvc.clock import FakeClock
from authsvc.core.revocations import RevocationSet

WINDOW = 990.0
MAX_STALENESS = 5.0


@pytest.fixture
def monotonic() -> FakeClock:
    return FakeClock(start=1000.0)


@pytest.fixture
def revocations(monotonic: FakeClock) -> RevocationSet:
    return RevocationSet(WINDOW, MAX_STALENESS, monotonic)


def test_before_the_first_load_nothing_can_be_answered(revocations):
    """Until a snapshot is loaded the set is untrusted and is_revoked answers None."""
    answer = revocations.is_revoked("s1")

    assert (answer, revocations.trusted, len(revocations)) == (None, False, 0)


def test_a_loaded_set_answers_for_revoked_and_unrevoked_sessions(revocations):
    """After load, a listed session is revoked, any other is not, and the set is trusted."""
    revocations.load({"s1": WINDOW - 10, "s2": WINDOW - 20})

    answers = (revocations.is_revoked("s1"), revocations.is_revoked("other"))

    assert answers == (True, False)
    assert (revocations.trusted, sorted(revocations.snapshot())) == (True, ["s1", "s2"])


def test_load_merges_and_never_forgets_what_the_set_held(revocations):
    """A second load (a reconnect, perhaps to a failed-over database that lost some
    rows) adds what it lists and forgets nothing this replica acknowledged."""
    revocations.load({"s1": WINDOW})

    revocations.load({"s2": WINDOW})

    assert (revocations.is_revoked("s1"), revocations.is_revoked("s2")) == (True, True)


def test_a_silent_feed_is_trusted_for_max_staleness_after_its_last_word(revocations,
                                                                          monotonic):
    """Trust counts from the last confirmation (heard), not from when a broken feed
    is noticed: with no word for max_staleness the set answers None."""
    revocations.load({})
    monotonic.advance(4.0)
    revocations.heard()  # a heartbeat or an answered ping
    monotonic.advance(4.9)

    trusted_then = revocations.is_revoked("s1")
    monotonic.advance(0.2)

    assert (trusted_then, revocations.is_revoked("s1")) == (False, None)


def test_added_sessions_are_revoked(revocations):
    """Sessions added after the load are revoked, and a known one is not counted twice."""
    revocations.load({"s1": WINDOW})

    revocations.add(["s2", "s1", "s3"])

    assert [revocations.is_revoked(s) for s in ("s1", "s2", "s3")] == [True, True, True]
    assert len(revocations) == 3


def test_a_loaded_session_is_kept_for_what_the_database_says_is_left(revocations,
                                                                      monotonic):
    """A reload says, per session, how many seconds it must still be kept (worked out
    by the database's clock); prune drops each once that time is up, never earlier."""
    revocations.load({"short": 10, "long": 600})
    monotonic.advance(10)
    revocations.prune()
    at_ten = sorted(revocations.snapshot())
    monotonic.advance(0.001)

    revocations.prune()

    assert (at_ten, revocations.snapshot()) == (["long", "short"], ["long"])


def test_what_a_load_says_is_left_never_exceeds_the_window(revocations, monotonic):
    """However much a source claims is left, a session is kept at most ``window``."""
    revocations.load({"s1": 10 * WINDOW})
    monotonic.advance(WINDOW + 1)

    revocations.prune()

    assert revocations.snapshot() == []


def test_a_reload_never_shortens_what_is_kept(revocations, monotonic):
    """A later load that says less is left (another database, another clock) does not
    make the set forget a session sooner than it already would."""
    revocations.load({"s1": 600})
    revocations.load({"s1": 5})
    monotonic.advance(100)

    revocations.prune()

    assert revocations.snapshot() == ["s1"]


@pytest.mark.parametrize("arrives", ["add", "remember"])
def test_sessions_that_arrive_are_kept_for_the_window_from_their_arrival(revocations,
                                                                          monotonic, arrives):
    """A session the feed delivers (or this worker revoked) is kept for exactly
    ``window`` seconds of the monotonic clock from its arrival."""
    revocations.load({})
    getattr(revocations, arrives)(["s1"])
    monotonic.advance(WINDOW)
    revocations.prune()
    kept = revocations.is_revoked("s1")
    monotonic.advance(0.001)

    revocations.prune()

    assert (kept, "s1" in revocations.snapshot()) == (True, False)


def test_a_lost_feed_is_trusted_for_max_staleness_then_answers_none(revocations, monotonic):
    """After lost(), unrevoked sessions answer False for max_staleness seconds, then None;
    sessions known to be revoked stay revoked."""
    revocations.load({"s1": WINDOW})
    revocations.lost()

    monotonic.advance(MAX_STALENESS)
    at_limit = (revocations.is_revoked("s2"), revocations.trusted)
    monotonic.advance(0.001)
    past_limit = (revocations.is_revoked("s2"), revocations.trusted)

    assert at_limit == (False, True)
    assert past_limit == (None, False)
    assert revocations.is_revoked("s1") is True


def test_losing_the_feed_again_does_not_extend_the_trust(revocations, monotonic):
    """A second lost() before the feed is back keeps the first deadline."""
    revocations.load({})
    revocations.lost()
    monotonic.advance(3)
    revocations.lost()

    monotonic.advance(MAX_STALENESS - 3 + 0.001)

    assert revocations.is_revoked("s1") is None


def test_a_load_after_a_lost_feed_restores_trust(revocations, monotonic):
    """A fresh snapshot makes the set trusted again, however long the feed was down."""
    revocations.load({})
    revocations.lost()
    monotonic.advance(60)

    revocations.load({"s1": WINDOW})

    assert (revocations.is_revoked("s2"), revocations.trusted) == (False, True)


def test_losing_the_feed_before_any_load_trusts_nothing(revocations):
    """lost() before the first load leaves the set untrusted."""
    revocations.lost()

    assert revocations.is_revoked("s1") is None


def test_watchers_receive_newly_added_sessions(revocations):
    """Every watcher gets each add's newly revoked sessions; already-known ones are not
    sent again, and an unwatched queue gets nothing more."""
    revocations.load({"s0": WINDOW})
    first, second = revocations.watch(), revocations.watch()

    revocations.add(["s1", "s2"])
    revocations.add(["s0", "s1"])
    revocations.unwatch(second)
    revocations.add(["s3"])

    assert [first.get_nowait() for _ in range(first.qsize())] == [["s1", "s2"], ["s3"]]
    assert [second.get_nowait() for _ in range(second.qsize())] == [["s1", "s2"]]


def test_a_watcher_that_falls_behind_is_dropped_with_a_none_sentinel(revocations):
    """When a watcher's queue is full its backlog is discarded, it receives None (its
    cue to reconnect) and nothing after that."""
    revocations.load({})
    slow = revocations.watch(maxsize=2)
    revocations.add(["s1"])
    revocations.add(["s2"])

    revocations.add(["s3"])
    revocations.add(["s4"])

    assert [slow.get_nowait() for _ in range(slow.qsize())] == [None]


def test_losing_the_feed_ends_every_watch_with_none(revocations):
    """lost() discards each watcher's backlog and sends it None."""
    revocations.load({})
    watcher = revocations.watch()
    revocations.add(["s1"])

    revocations.lost()
    revocations.add(["s2"])

    assert [watcher.get_nowait() for _ in range(watcher.qsize())] == [None]


def test_this_workers_own_revocations_do_not_vouch_for_the_feed(revocations):
    """remember() refuses the sessions at once but, unlike the feed's add(), says
    nothing about the set being current: an unloaded set stays untrusted."""
    revocations.remember(["s1"])

    assert (revocations.is_revoked("s1"), revocations.is_revoked("s2")) == (True, None)
    assert not revocations.trusted


def test_after_close_a_new_watch_ends_at_once(revocations):
    """Once this worker is stopping, a stream that starts watching gets the end
    sentinel straight away instead of heartbeats until the grace runs out."""
    revocations.load({})
    revocations.close_watches()

    queue = revocations.watch()

    assert queue.get_nowait() is None


def test_a_longer_window_extends_what_is_held(revocations, monotonic):
    """resize to a longer window keeps what arrived that much longer, and what arrives
    next for the whole new window."""
    revocations.add(["early"])
    monotonic.advance(100)

    revocations.resize(WINDOW + 500)
    revocations.add(["late"])
    monotonic.advance(WINDOW + 399)
    revocations.prune()
    kept = (revocations.is_revoked("early"), revocations.is_revoked("late"))
    monotonic.advance(2)
    revocations.prune()

    assert kept == (True, True)
    assert (revocations.window, "early" in revocations.snapshot()) == (WINDOW + 500, False)


def test_a_shorter_window_never_cuts_what_is_held(revocations, monotonic):
    """resize to a shorter window leaves what is held to its old time."""
    revocations.add(["early"])

    revocations.resize(10)
    monotonic.advance(WINDOW - 1)
    revocations.prune()

    assert (revocations.window, revocations.snapshot()) == (10, ["early"])
