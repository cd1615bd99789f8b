"""Which hosts a multi-host PostgreSQL URL names, in order, and how long a host
that has not answered holds up the next one."""

from __future__ import annotations

import pytest

from authsvc.store.hosts import MAX_STAGGER, Host, hosts_of, stagger


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://u:p@h1:5433,h2:5434/db?target_session_attrs=read-write",
     [Host("h1", 5433), Host("h2", 5434)]),
    ("postgresql://h1,h2:6000/db", [Host("h1", None), Host("h2", 6000)]),
    ("postgresql://u@[::1]:5433,[fe80::2]/db", [Host("::1", 5433), Host("fe80::2", None)]),
    ("postgresql://db.example.com/db", [Host("db.example.com", None)]),
    ("postgresql://u@/db?host=/run/a,/run/b&port=5433,5434",
     [Host("/run/a", 5433), Host("/run/b", 5434)]),
    ("postgresql://u@/db?host=10.0.0.1,10.0.0.2&port=6432",
     [Host("10.0.0.1", 6432), Host("10.0.0.2", 6432)]),
    ("postgresql://u@%2Frun%2Fpg:5433/db", [Host("/run/pg", 5433)]),
    ("postgresql:///db", []),
])
def test_the_hosts_of_a_url_in_order(url, expected):
    """Hosts come from the authority (``h:p`` lists, IPv6 in brackets, percent-encoded
    socket directories) or else from the host= and port= parameters; a host without
    a port gets none (asyncpg's default then applies)."""
    assert hosts_of(url) == expected


def test_the_stagger_lets_every_host_start_within_half_the_timeout():
    """With n hosts that all hang, the last one is asked at most half the connect
    timeout after the first, and never more than MAX_STAGGER after the one before."""
    assert stagger(2.0, 2) == MAX_STAGGER
    assert stagger(1.0, 3) == 0.25
    assert stagger(60.0, 5) == MAX_STAGGER
    assert stagger(1.0, 1) == MAX_STAGGER
