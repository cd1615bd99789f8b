"""The benchmark's profile reading: py-spy's raw stacks sorted into where a worker's
time goes, the hash threads and the loop's idle wait apart."""

from __future__ import annotations

from pathlib import Path

from bench import page, profile

LOOP = ("_run_module_as_main (<frozen runpy>:198);<module> (authsvc/__main__.py:39);"
        "Runner.run (asyncio/runners.py:118);BaseEventLoop._run_once "
        "(asyncio/base_events.py:1922)")
THREAD = ("Thread._bootstrap (threading.py:1002);Thread._bootstrap_inner "
          "(threading.py:1045);Thread.run (threading.py:982)")


def test_samples_are_sorted_by_what_runs_above_the_loop(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text("\n".join([
        f"{LOOP};EpollSelector.select (selectors.py:472) 40",
        f"{LOOP};Handle._run (asyncio/events.py:84) 30",
        f"{LOOP};unary (authsvc/transport/calls.py:120);observe "
        "(authsvc/transport/observability.py:120);info (logging/__init__.py:1489) 10",
        f"{LOOP};unary (authsvc/transport/calls.py:120);Refresh.run "
        "(authsvc/domain/sessions/refresh.py:40) 10",
        f"{THREAD};_worker (concurrent/futures/thread.py:83);verify "
        "(argon2/_password_hasher.py:250) 6",
        f"{THREAD};serve_forever (socketserver.py:233) 4",
    ]) + "\n")

    shares = profile.shares(raw)

    assert shares == {profile.WAITING: 0.4, profile.SHARES[-1][0]: 0.3,
                      "access log and metrics": 0.1,
                      "authsvc's own Python (handler, interceptors, domain)": 0.1,
                      profile.HASHING: 0.06, profile.OTHER_THREADS: 0.04}
    busy = page.busy_shares(shares)
    assert profile.WAITING not in busy
    assert round(busy[profile.SHARES[-1][0]], 3) == 0.5
    assert round(sum(busy.values()), 6) == 1.0


def test_an_empty_profile_has_no_shares(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text("")

    assert profile.shares(raw) == {}
    assert page.busy_shares({}) == {}
