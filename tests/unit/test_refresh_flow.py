"""Refresh (``domain.sessions.refresh``) on the storage fakes: rotation, the grace interval's
identical successor, reuse revoking the session, ended sessions and the refresh
throttle, each decided by the store as ``refresh_session`` decides."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from authsvc.domain.factors.attempts import Attempt
from authsvc.domain.sessions.opener import SecondFactorRequired, SignedIn
from authsvc.errors import InvalidArgument, RateLimited, RefreshTokenInvalid, RefreshTokenReused

from .flows import CALLER, GRACE, IDLE_TTL, PASSWORD, POLICY, Flows, claims


@pytest.fixture
def flows() -> Iterator[Flows]:
    kit = Flows()
    yield kit
    kit.close()


async def signed_in(flows: Flows) -> SignedIn:
    await flows.add_user(scopes=("read",))
    answer = await flows.sign_in.sign_in("email", "alice@example.com", PASSWORD, CALLER)
    assert isinstance(answer, SignedIn)
    return answer


def refresh(flows: Flows, token: str):
    return flows.refresh.refresh(token, CALLER)


async def test_a_refresh_rotates_and_keeps_the_sign_in(flows):
    """The answer is the session's next token with a fresh access token that keeps the
    sign-in's amr and auth_time."""
    first = await signed_in(flows)
    signed_at = int(flows.clock())
    flows.clock.advance(60)

    pair = await refresh(flows, first.tokens.refresh_token)

    token = claims(pair.access_token)
    assert pair.refresh_token not in (first.tokens.refresh_token, "")
    assert (pair.session_id, token["sid"], token["scope"]) == (
        first.tokens.session_id, first.tokens.session_id, "read")
    assert (token["amr"], token["auth_time"], token["iat"]) == (
        ["pwd"], signed_at, signed_at + 60)


async def test_the_spent_token_within_the_grace_gets_the_identical_successor(flows):
    """Presented again within the grace interval (a lost answer, a second tab): the
    same successor again, never a new branch."""
    first = await signed_in(flows)
    answered = await refresh(flows, first.tokens.refresh_token)
    flows.clock.advance(GRACE - 1)

    again = await refresh(flows, first.tokens.refresh_token)

    assert again.refresh_token == answered.refresh_token
    assert flows.remembered.sessions == []


async def test_the_spent_token_after_the_grace_revokes_the_session(flows):
    """Reuse: REFRESH_TOKEN_REUSED, the session revoked (this worker refuses its access
    tokens at once) and its current token dead too."""
    first = await signed_in(flows)
    current = await refresh(flows, first.tokens.refresh_token)
    flows.clock.advance(GRACE + 1)

    with pytest.raises(RefreshTokenReused):
        await refresh(flows, first.tokens.refresh_token)
    with pytest.raises(RefreshTokenInvalid):
        await refresh(flows, current.refresh_token)

    assert flows.remembered.sessions == [first.tokens.session_id]
    assert flows.fake.tables.sessions[first.tokens.session_id].revoked_at is not None


@pytest.mark.parametrize("end", ["idle", "disabled"])
async def test_an_ended_session_refuses_its_token(flows, end):
    """Idle past its lifetime, or its user disabled: REFRESH_TOKEN_INVALID, audited."""
    first = await signed_in(flows)
    if end == "idle":
        flows.clock.advance(IDLE_TTL + 1)
    else:
        flows.fake.disable(first.tokens.user_id)

    with pytest.raises(RefreshTokenInvalid):
        await refresh(flows, first.tokens.refresh_token)

    assert [e.reason for e in flows.fake.events("refresh.failure")] == ["session_ended"]


async def test_refused_tokens_throttle_the_client(flows):
    """Garbage counts against the client's address; past its free failures even a
    good token is refused (RATE_LIMITED) until the block ends."""
    first = await signed_in(flows)
    for _ in range(POLICY.refresh_address.free + 1):
        with pytest.raises(RefreshTokenInvalid):
            await refresh(flows, "not-a-token")

    with pytest.raises(RateLimited) as garbage:
        await refresh(flows, "not-a-token")
    with pytest.raises(RateLimited) as good:
        await refresh(flows, first.tokens.refresh_token)
    flows.clock.advance(good.value.retry_after + 1)
    pair = await refresh(flows, first.tokens.refresh_token)

    assert 0 < garbage.value.retry_after <= POLICY.refresh_address.base
    assert pair.session_id == first.tokens.session_id


async def test_a_second_factor_session_refreshes_with_its_amr(flows):
    """A session opened by CompleteSignIn keeps pwd + otp through refreshes."""
    user_id = await flows.add_user()
    flows.fake.give_factor(user_id)
    flows.factors.codes[user_id] = "123456"
    waiting = await flows.sign_in.sign_in("email", "alice@example.com", PASSWORD, CALLER)
    assert isinstance(waiting, SecondFactorRequired)
    pair = await flows.second_factor.complete(waiting.mfa_token, Attempt(totp="123456"),
                                              CALLER)

    refreshed = await refresh(flows, pair.refresh_token)

    assert claims(refreshed.access_token)["amr"] == ["pwd", "otp"]


async def test_an_empty_token_is_a_bad_field(flows):
    """No token at all: INVALID_ARGUMENT naming refresh_token."""
    with pytest.raises(InvalidArgument) as missing:
        await refresh(flows, "")

    assert missing.value.field == "refresh_token"
