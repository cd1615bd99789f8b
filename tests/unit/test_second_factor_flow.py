"""Second-factor sign-in (``domain.factors.mfa``, CompleteSignIn) on the storage fakes: the
challenge SignIn left, a code or passkey checked behind the code tarpit, and the
session ``Sessions`` opens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from authsvc.domain.factors.attempts import Attempt
from authsvc.domain.factors.mfa import MAX_ATTEMPTS
from authsvc.domain.sessions.opener import SecondFactorRequired, challenge_hash
from authsvc.domain.throttling.throttle import ThrottlePolicy
from authsvc.errors import (
    CodeInvalid,
    InvalidArgument,
    MfaTokenInvalid,
    PasskeyInvalid,
    RateLimited,
)
from authsvc.store.throttles import Tarpit

from .flows import CALLER, MFA_TTL, PASSWORD, POLICY, Flows, claims

CODE = "123456"


def _flows(policy: ThrottlePolicy = POLICY) -> Iterator[Flows]:
    kit = Flows(policy)
    yield kit
    kit.close()


@pytest.fixture
def flows() -> Iterator[Flows]:
    yield from _flows()


async def waiting(flows: Flows) -> tuple[str, str]:
    """alice, with an authenticator app, signed in with her password: her id and the
    mfa_token."""
    user_id = await flows.add_user()
    flows.fake.give_factor(user_id, totp=True)
    flows.factors.codes[user_id] = CODE
    answer = await flows.sign_in.sign_in("email", "alice@example.com", PASSWORD, CALLER)
    assert isinstance(answer, SecondFactorRequired)
    return user_id, answer.mfa_token


def complete(flows: Flows, mfa_token: str, code: str = CODE):
    return flows.second_factor.complete(mfa_token, Attempt(totp=code), CALLER)


async def test_the_right_code_opens_a_session_with_both_factors(flows):
    """The session's tokens say pwd and otp, authenticated now; the challenge is spent,
    so the same mfa_token cannot open a second session."""
    user_id, mfa_token = await waiting(flows)

    pair = await complete(flows, mfa_token)
    with pytest.raises(MfaTokenInvalid):
        await complete(flows, mfa_token)

    token = claims(pair.access_token)
    assert (token["sub"], token["amr"], token["auth_time"]) == (
        user_id, ["pwd", "otp"], int(flows.clock()))
    assert flows.fake.tables.sessions[pair.session_id].amr == ("pwd", "otp")
    assert [e.reason for e in flows.fake.events("signin.success")] == ["second_factor"]


async def test_a_wrong_code_is_counted_on_the_challenge(flows):
    """CODE_INVALID, audited; the challenge keeps living and the right code still
    completes it."""
    _, mfa_token = await waiting(flows)

    with pytest.raises(CodeInvalid):
        await complete(flows, mfa_token, "654321")
    pair = await complete(flows, mfa_token)

    assert flows.fake.tables.challenges[challenge_hash(mfa_token)].attempts == 1
    assert [e.reason for e in flows.fake.events("signin.failure")] == ["wrong_code"]
    assert pair.session_id in flows.fake.tables.sessions


async def test_a_challenge_out_of_attempts_is_gone(flows):
    """After MAX_ATTEMPTS wrong codes even the right one finds no challenge."""
    _, mfa_token = await waiting(flows)
    for _ in range(MAX_ATTEMPTS):
        with pytest.raises(CodeInvalid):
            await complete(flows, mfa_token, "654321")

    with pytest.raises(MfaTokenInvalid):
        await complete(flows, mfa_token)


async def test_the_code_tarpit_refuses_before_the_code_is_looked_at():
    """Past the user's free code failures the tarpit refuses (RATE_LIMITED, audited),
    right code or not, until its block ends; the refusal is not a wrong code."""
    tight = ThrottlePolicy(identifier=POLICY.identifier, address=POLICY.address,
                           pair=POLICY.pair, refresh_address=POLICY.refresh_address,
                           trust_ttl=POLICY.trust_ttl,
                           code=Tarpit(free=1, base=5.0, cap=60.0, window=900.0))
    for flows in _flows(tight):
        _, mfa_token = await waiting(flows)
        for _ in range(2):
            with pytest.raises(CodeInvalid):
                await complete(flows, mfa_token, "654321")

        with pytest.raises(RateLimited) as refused:
            await complete(flows, mfa_token)
        flows.clock.advance(refused.value.retry_after + 1)
        pair = await complete(flows, mfa_token)

        assert 0 < refused.value.retry_after <= 5.0
        assert [e.reason for e in flows.fake.events("signin.throttled")] == ["second_factor"]
        assert flows.fake.tables.challenges[challenge_hash(mfa_token)].attempts == 2
        assert pair.session_id in flows.fake.tables.sessions


@pytest.mark.parametrize("change", ["change_password", "disable"])
async def test_credentials_changed_since_the_password_end_the_sign_in(flows, change):
    """A password change or disabling after the password was checked: the right code
    opens nothing (MFA_TOKEN_INVALID), audited."""
    user_id, mfa_token = await waiting(flows)
    getattr(flows.fake, change)(user_id)

    with pytest.raises(MfaTokenInvalid):
        await complete(flows, mfa_token)

    assert flows.fake.tables.sessions == {}
    assert [e.reason for e in flows.fake.events("signin.failure")] == ["credentials_changed"]


async def test_a_challenge_expires(flows):
    """Past the mfa_token's lifetime (the store's clock) the challenge is gone."""
    _, mfa_token = await waiting(flows)
    flows.clock.advance(MFA_TTL + 1)

    with pytest.raises(MfaTokenInvalid):
        await complete(flows, mfa_token)


async def test_a_passkey_completes_the_sign_in(flows):
    """A passkey that verifies opens a session with amr pwd + hwk; one that does not
    is PASSKEY_INVALID."""
    _, mfa_token = await waiting(flows)

    with pytest.raises(PasskeyInvalid):
        await flows.second_factor.complete(
            mfa_token, Attempt(passkey=("ceremony", "forged")), CALLER)
    pair = await flows.second_factor.complete(
        mfa_token, Attempt(passkey=("ceremony", "genuine")), CALLER)

    assert claims(pair.access_token)["amr"] == ["pwd", "hwk"]


async def test_an_unknown_or_missing_mfa_token(flows):
    """An mfa_token nobody was given finds no challenge; an empty one is a bad field."""
    with pytest.raises(MfaTokenInvalid):
        await complete(flows, "no-such-token")
    with pytest.raises(InvalidArgument) as missing:
        await complete(flows, "")

    assert missing.value.field == "mfa_token"
