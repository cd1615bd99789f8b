"""Password sign-in (``domain.sessions.signin``) on the storage fakes: every branch of the flow,
from the throttle's refusal to the session ``Sessions`` opens, in milliseconds."""

from __future__ import annotations

from collections.abc import Iterator

import argon2
import pytest

from authsvc.domain.accounts.passwords import Verdict
from authsvc.domain.sessions.opener import SecondFactorRequired, SignedIn, challenge_hash
from authsvc.errors import IdentifierNotVerified, InvalidCredentials, RateLimited

from .flows import CALLER, MFA_TTL, PASSWORD, POLICY, Flows, claims


@pytest.fixture
def flows() -> Iterator[Flows]:
    kit = Flows()
    yield kit
    kit.close()


def sign_in(flows: Flows, password: str = PASSWORD, email: str = "alice@example.com"):
    return flows.sign_in.sign_in("email", email, password, CALLER)


def reasons(flows: Flows, kind: str) -> list[str | None]:
    return [event.reason for event in flows.fake.events(kind)]


async def test_the_right_password_opens_a_session(flows):
    """A session for the user, amr pwd, its success audited, and a device token."""
    user_id = await flows.add_user(scopes=("read",))

    signed_in = await sign_in(flows)

    assert isinstance(signed_in, SignedIn)
    token = claims(signed_in.tokens.access_token)
    assert (token["sub"], token["sid"], token["amr"], token["scope"]) == (
        user_id, signed_in.tokens.session_id, ["pwd"], "read")
    assert list(flows.fake.tables.sessions) == [signed_in.tokens.session_id]
    assert flows.fake.events("signin.success")[0].session_id == signed_in.tokens.session_id
    assert signed_in.device_token


@pytest.mark.parametrize(("arrange", "reason"), [
    ("wrong password", "wrong_password"),
    ("unknown user", "unknown_user"),
    ("disabled", "disabled"),
])
async def test_every_failure_is_the_same_invalid_credentials(flows, arrange, reason):
    """A wrong password, an unknown user and a disabled account answer alike; the audit
    row says which it was, and no session is opened."""
    user_id = await flows.add_user()
    if arrange == "disabled":
        flows.fake.disable(user_id)
    password = "wrong password" if arrange == "wrong password" else PASSWORD
    email = "bob@example.com" if arrange == "unknown user" else "alice@example.com"

    with pytest.raises(InvalidCredentials):
        await sign_in(flows, password, email)

    assert reasons(flows, "signin.failure") == [reason]
    assert flows.fake.tables.sessions == {}


async def test_an_unverified_account_is_told_to_who_knows_the_password(flows):
    """The right password of an account not verified yet: IDENTIFIER_NOT_VERIFIED; a
    wrong one learns nothing (INVALID_CREDENTIALS)."""
    await flows.add_user(verified=False)

    with pytest.raises(InvalidCredentials):
        await sign_in(flows, "wrong password")
    with pytest.raises(IdentifierNotVerified):
        await sign_in(flows)

    assert reasons(flows, "signin.failure") == ["wrong_password", "unverified"]


async def test_the_tarpit_refuses_before_the_password_is_checked(flows):
    """Past the pair's free failures the next attempt blocks the pair; the one after is
    refused, right password or not, until the block ends."""
    await flows.add_user()
    for _ in range(POLICY.pair.free + 1):
        with pytest.raises(InvalidCredentials):
            await sign_in(flows, "wrong password")

    with pytest.raises(RateLimited) as refused:
        await sign_in(flows)
    flows.clock.advance(refused.value.retry_after + 1)
    signed_in = await sign_in(flows)

    assert 0 < refused.value.retry_after <= POLICY.pair.base
    assert reasons(flows, "signin.throttled") == ["refused 1"]
    assert isinstance(signed_in, SignedIn)


async def test_a_right_password_gives_its_slot_back(flows):
    """A successful sign-in is not counted: the pair's free failures are all there
    again after it."""
    await flows.add_user()
    for _ in range(POLICY.pair.free):
        with pytest.raises(InvalidCredentials):
            await sign_in(flows, "wrong password")
    await sign_in(flows)

    for _ in range(POLICY.pair.free):
        with pytest.raises(InvalidCredentials):
            await sign_in(flows, "wrong password")

    assert reasons(flows, "signin.throttled") == []


class _ChangedWhileHashing:
    """Passwords whose verification lets ``change`` happen meanwhile, as a password
    change or disabling on another replica would."""

    def __init__(self, flows: Flows, change) -> None:
        self._passwords = flows.passwords
        self._change = change

    async def verify(self, stored_hash: str | None, password: str) -> Verdict:
        verdict = await self._passwords.verify(stored_hash, password)
        self._change()
        return verdict


@pytest.mark.parametrize("change", ["change_password", "disable"])
async def test_credentials_changed_while_hashing_open_nothing(flows, change):
    """The user row changed after it was read: still_signing_in finds it so, the sign-in
    fails as INVALID_CREDENTIALS, audited, and no session is opened."""
    user_id = await flows.add_user()
    flows.sign_in._passwords = _ChangedWhileHashing(  # type: ignore[assignment]
        flows, lambda: getattr(flows.fake, change)(user_id))

    with pytest.raises(InvalidCredentials):
        await sign_in(flows)

    assert reasons(flows, "signin.failure") == ["credentials_changed"]
    assert flows.fake.tables.sessions == {}


async def test_a_user_with_a_second_factor_gets_a_challenge_not_a_session(flows):
    """The right password of a user with a factor: SecondFactorRequired naming the
    factors, a live challenge for its mfa_token, no session."""
    user_id = await flows.add_user()
    flows.fake.give_factor(user_id, totp=True, recovery_codes=10)

    answer = await sign_in(flows)

    assert isinstance(answer, SecondFactorRequired)
    assert (answer.factors, answer.expires_in) == (("totp", "recovery_code"), MFA_TTL)
    challenge = flows.fake.tables.challenges[challenge_hash(answer.mfa_token)]
    assert (challenge.user_id, challenge.spent) == (user_id, False)
    assert flows.fake.tables.sessions == {}
    assert [e.user_id for e in flows.fake.events("signin.mfa_required")] == [user_id]


async def test_a_hash_of_old_parameters_is_replaced(flows):
    """A right password stored under other argon2 parameters is hashed again with the
    current ones."""
    old = argon2.PasswordHasher(time_cost=2, memory_cost=64, parallelism=1).hash(PASSWORD)
    user_id = flows.fake.add_user("alice@example.com", old)

    await sign_in(flows)

    assert flows.fake.tables.users[user_id].password_hash != old
