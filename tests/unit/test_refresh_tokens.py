"""Counter refresh tokens (``authsvc.domain.sessions.refresh_tokens``): what they carry, and that
any change to one, or a token under another key, reads as nothing."""

from __future__ import annotations

import uuid

import pytest

from authsvc.domain.sessions.refresh_tokens import (
    CounterToken,
    RefreshTokens,
    looks_like_counter_token,
)

SESSION = str(uuid.UUID(int=7))


@pytest.fixture
def tokens() -> RefreshTokens:
    return RefreshTokens(b"k" * 32)


def test_a_token_carries_its_session_and_counter(tokens):
    """A token reads back as the session and counter it was made for, and is the
    same on every replica (recomputed, never stored)."""
    token = tokens.token(SESSION, 41)

    assert tokens.read(token) == CounterToken(SESSION, 41)
    assert RefreshTokens(b"k" * 32).token(SESSION, 41) == token
    assert len(token) == 76 and looks_like_counter_token(token)


def test_each_counter_and_session_has_its_own_token(tokens):
    other = str(uuid.UUID(int=8))
    made = {tokens.token(s, c) for s in (SESSION, other) for c in range(50)}

    assert len(made) == 100


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),   # the HMAC
    lambda t: t[:30] + ("A" if t[30] != "A" else "B") + t[31:],  # the session
    lambda t: t + "=", lambda t: " " + t, lambda t: t[:-1], lambda t: t + "A",
    lambda t: t.replace("-", "+").replace("_", "/") if ("-" in t or "_" in t) else t + "+",
], ids=["mac", "session", "padded", "space", "short", "long", "standard-alphabet"])
def test_any_change_reads_as_nothing(tokens, mangle):
    """A token altered anywhere, or in another encoding, is not a token."""
    assert tokens.read(mangle(tokens.token(SESSION, 3))) is None


def test_a_token_under_another_key_reads_as_nothing(tokens):
    assert tokens.read(RefreshTokens(b"x" * 32).token(SESSION, 3)) is None


def test_a_counter_beyond_a_bigint_is_never_read(tokens):
    """A session's counter is a bigint; a token past it was never issued."""
    assert tokens.read(tokens.token(SESSION, 2**63)) is None
