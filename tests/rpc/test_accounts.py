"""Specification of the accounts people run themselves: SignUp,
VerifyIdentifier, ResendVerification, ChangePassword, RequestPasswordReset and
ResetPassword, against a real server, a real PostgreSQL and a real SMTP server
(aiosmtpd) that the delivery loop sends to.

Codes expire by the database's clock; a test that needs an expired code moves
the stored times back (``helpers.travel``) instead of waiting.
"""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import grpc
import pytest

from authsvc.config import Secret, Settings
from authsvc.runtime.app import App
from authsvc.v1 import auth_pb2

from ..helpers import PASSWORD, bearer, fails, parse, sign_in, travel
from ..receivers import Mailbox, text_of

NEW_PASSWORD = "purple monkey dishwasher 42"
OTHER_PASSWORD = "a different passphrase 17"


@pytest.fixture
def signup_mode() -> str:
    return "verify"


@pytest.fixture
def extra_settings() -> dict[str, object]:
    return {}


@pytest.fixture
def settings(settings: Settings, mailbox: Mailbox, signup_mode: str,
             extra_settings: dict[str, object]) -> Settings:
    """The suite's settings with sign-up in ``signup_mode`` and mail to ``mailbox``;
    quick retries so a test of an outage does not wait long; ``extra_settings``."""
    return dataclasses.replace(settings, signup=signup_mode, smtp_url=Secret(mailbox.url),
                               smtp_from="authsvc@example.com", outbox_retry_base=0.05,
                               outbox_retry_max=0.5, **extra_settings)


async def _signed_up(stub, mailbox: Mailbox, email: str = "bob@example.com",
                     password: str = PASSWORD) -> str:
    """Sign up ``email`` in verify mode; the code that arrived."""
    await stub.SignUp(auth_pb2.SignUpRequest(email=email, password=password))
    return await mailbox.code(email)


async def _events(app: App, kind: str) -> list[asyncpg.Record]:
    async with app.db.connection() as conn:
        return await conn.fetch("SELECT * FROM auth_events WHERE kind = $1 ORDER BY id", kind)


async def test_sign_up_sends_a_code_and_sign_in_waits_for_verification(stub, mailbox, app):
    """Verify mode: SignUp answers empty, the code arrives by mail, SignIn is refused
    with IDENTIFIER_NOT_VERIFIED until VerifyIdentifier takes the code."""
    answer = await stub.SignUp(auth_pb2.SignUpRequest(email="Bob@Example.com",
                                                      password=PASSWORD))
    code = await mailbox.code("bob@example.com")
    before = await fails(sign_in(stub, "bob@example.com"))
    await stub.VerifyIdentifier(auth_pb2.VerifyIdentifierRequest(email="bob@example.com",
                                                                 code=code))
    after = await sign_in(stub, "bob@example.com")

    assert answer == auth_pb2.SignUpResponse()
    assert (before.code, before.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                            "IDENTIFIER_NOT_VERIFIED")
    assert after.access_token and after.user_id
    assert len(await _events(app, "verification.succeeded")) == 1


async def test_an_unverified_account_with_a_wrong_password_is_invalid_credentials(stub, mailbox):
    """Only someone who knows the password learns that the account waits for verification."""
    await _signed_up(stub, mailbox)

    failure = await fails(sign_in(stub, "bob@example.com", "not the password at all"))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "INVALID_CREDENTIALS")


async def test_sign_up_of_a_taken_address_answers_the_same_and_tells_the_owner(
        stub, mailbox, user, app):
    """A taken email gets the byte-identical answer a new one gets; its owner is told
    someone tried (no code), and the owner's password still works."""
    fresh = await stub.SignUp(auth_pb2.SignUpRequest(email="new@example.com",
                                                     password=PASSWORD))
    taken = await stub.SignUp(auth_pb2.SignUpRequest(email="alice@example.com",
                                                     password=OTHER_PASSWORD))
    notice = (await mailbox.wait_for("alice@example.com"))[0]
    await mailbox.wait_for("new@example.com")

    assert taken.SerializeToString() == fresh.SerializeToString() == b""
    assert notice["Subject"] == "Someone tried to sign up with your address"
    assert "code" not in text_of(notice).lower().replace("encode", "")
    assert (await sign_in(stub)).user_id == user
    assert len(await _events(app, "signup.taken")) == 1


async def test_username_sign_up_is_refused_in_verify_mode(stub):
    """A username alone proves no address: INVALID_ARGUMENT naming the field."""
    failure = await fails(stub.SignUp(auth_pb2.SignUpRequest(username="bobby",
                                                             password=PASSWORD)))

    assert (failure.code, failure.reason, failure.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["username"])


@pytest.mark.parametrize(("request_fields", "field"), [
    ({"email": "bob@example.com", "password": "short"}, "password"),
    ({"email": "bob@example.com", "password": "password123"}, "password"),
    ({"email": "bob@example.com", "password": "bob@example.com and more"}, "password"),
    ({"email": "not an email", "password": PASSWORD}, "email"),
    ({"password": PASSWORD}, "identifier"),
])
async def test_sign_up_refuses_bad_input_naming_the_field(stub, mailbox, request_fields,
                                                          field):
    """The rules of `users add` apply; nothing is created and nothing sent."""
    failure = await fails(stub.SignUp(auth_pb2.SignUpRequest(**request_fields)))

    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
    assert mailbox.received() == []


@pytest.mark.parametrize("signup_mode", ["off"])
async def test_sign_up_is_refused_when_off(stub):
    """AUTHSVC_SIGNUP=off (the default): PERMISSION_DENIED, SIGNUP_DISABLED."""
    failure = await fails(stub.SignUp(auth_pb2.SignUpRequest(email="bob@example.com",
                                                             password=PASSWORD)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED,
                                              "SIGNUP_DISABLED")


@pytest.mark.parametrize("signup_mode", ["open"])
async def test_open_sign_up_answers_like_sign_in(stub, mailbox):
    """Open mode: the account is usable at once and SignUp returns a token pair; a
    taken identifier is ALREADY_EXISTS (an account usable at once cannot hide it)."""
    tokens = await stub.SignUp(auth_pb2.SignUpRequest(username="bobby", password=PASSWORD))
    claims = await stub.Validate(auth_pb2.ValidateRequest(access_token=tokens.access_token))
    again = await fails(stub.SignUp(auth_pb2.SignUpRequest(username="Bobby",
                                                           password=OTHER_PASSWORD)))

    assert (tokens.token_type, claims.user_id) == ("Bearer", tokens.user_id)
    assert tokens.refresh_token and tokens.session_id == claims.session_id
    assert (again.code, again.reason, again.fields) == (grpc.StatusCode.ALREADY_EXISTS,
                                                        "ALREADY_EXISTS", ["username"])
    assert mailbox.received() == []


async def test_a_code_is_dead_after_five_wrong_tries(stub, mailbox, settings):
    """Five wrong codes kill the code: the right one is then CODE_INVALID too."""
    code = await _signed_up(stub, mailbox)
    wrong = f"{(int(code) + 1) % 10 ** 8:08d}"

    tries = [await fails(stub.VerifyIdentifier(auth_pb2.VerifyIdentifierRequest(
        email="bob@example.com", code=wrong))) for _ in range(5)]
    right = await fails(stub.VerifyIdentifier(auth_pb2.VerifyIdentifierRequest(
        email="bob@example.com", code=code)))

    assert {(t.code, t.reason) for t in tries} == {(grpc.StatusCode.UNAUTHENTICATED,
                                                    "CODE_INVALID")}
    assert (right.code, right.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CODE_INVALID")


async def test_wrong_codes_run_into_the_tarpit(stub, mailbox, app):
    """Tries count like sign-in attempts (per identifier, address and pair, reserved
    before the code is looked at): past the pair's free tries, RATE_LIMITED."""
    code = await _signed_up(stub, mailbox)
    wrong = f"{(int(code) + 1) % 10 ** 8:08d}"
    free = app.settings.throttle_pair_free

    answers = [await fails(stub.VerifyIdentifier(auth_pb2.VerifyIdentifierRequest(
        email="bob@example.com", code=wrong))) for _ in range(free + 2)]

    assert [a.reason for a in answers] == ["CODE_INVALID"] * (free + 1) + ["RATE_LIMITED"]
    assert answers[-1].code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert answers[-1].retry_delay is not None and answers[-1].retry_delay >= 1


@pytest.mark.parametrize("extra_settings", [{"throttle_pair_free": 50}])
async def test_a_code_is_single_use_even_under_concurrent_tries(stub, mailbox, user, app):
    """Ten concurrent resets with the one right code (the tarpit set aside): exactly one
    succeeds."""
    await stub.RequestPasswordReset(auth_pb2.RequestPasswordResetRequest(
        email="alice@example.com"))
    code = await mailbox.code("alice@example.com")

    async def attempt() -> str:
        try:
            await stub.ResetPassword(auth_pb2.ResetPasswordRequest(
                email="alice@example.com", code=code, new_password=NEW_PASSWORD))
        except grpc.RpcError as error:
            return parse(error).reason or ""
        return "OK"

    outcomes = await asyncio.gather(*(attempt() for _ in range(10)))

    assert sorted(outcomes) == ["CODE_INVALID"] * 9 + ["OK"]


async def test_an_expired_code_is_code_expired(stub, mailbox, settings, clock, database_url):
    """By the database's clock: a right code past its lifetime is CODE_EXPIRED."""
    code = await _signed_up(stub, mailbox)
    await travel(database_url, settings.code_ttl + 1, clock)

    failure = await fails(stub.VerifyIdentifier(auth_pb2.VerifyIdentifierRequest(
        email="bob@example.com", code=code)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "CODE_EXPIRED")


async def test_a_code_is_dead_after_use_and_after_a_newer_one(stub, mailbox):
    """A newer code voids the older; a used code is CODE_INVALID the second time."""
    first = await _signed_up(stub, mailbox)
    await stub.ResendVerification(auth_pb2.ResendVerificationRequest(email="bob@example.com"))
    second = await mailbox.code("bob@example.com", 2)

    old = await fails(stub.VerifyIdentifier(auth_pb2.VerifyIdentifierRequest(
        email="bob@example.com", code=first)))
    await stub.VerifyIdentifier(auth_pb2.VerifyIdentifierRequest(email="bob@example.com",
                                                                 code=second))
    reused = await fails(stub.VerifyIdentifier(auth_pb2.VerifyIdentifierRequest(
        email="bob@example.com", code=second)))

    assert first != second
    assert (old.reason, reused.reason) == ("CODE_INVALID", "CODE_INVALID")


@pytest.mark.parametrize("code", ["", "1234567", "123456789", "abcdefgh", "1234 678"])
async def test_a_malformed_code_is_invalid_argument(stub, code):
    """What cannot be a code is refused before anything is counted, naming the field."""
    failure = await fails(stub.VerifyIdentifier(auth_pb2.VerifyIdentifierRequest(
        email="bob@example.com", code=code)))

    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["code"])


async def test_resend_sends_nothing_for_unknown_or_verified_addresses(stub, mailbox, user):
    """ResendVerification always answers OK; only an unverified account gets a code."""
    answers = [await stub.ResendVerification(auth_pb2.ResendVerificationRequest(email=e))
               for e in ("alice@example.com", "nobody@example.com")]
    await _signed_up(stub, mailbox)  # a message that must come after nothing else

    assert answers == [auth_pb2.ResendVerificationResponse()] * 2
    assert [m["To"] for m in mailbox.received()] == ["bob@example.com"]


async def test_change_password_keeps_this_session_and_revokes_the_others(stub, mailbox,
                                                                         user, app):
    """ChangePassword: the caller's session lives on, every other one is revoked, the
    old password stops working, the owner is told and the change is audited."""
    this, other = await sign_in(stub), await sign_in(stub)

    await stub.ChangePassword(auth_pb2.ChangePasswordRequest(
        current_password=PASSWORD, new_password=NEW_PASSWORD),
        metadata=bearer(this.access_token))
    other_access = await fails(stub.Validate(auth_pb2.ValidateRequest(
        access_token=other.access_token)))
    other_refresh = await fails(stub.Refresh(auth_pb2.RefreshRequest(
        refresh_token=other.refresh_token)))
    this_access = await stub.Validate(auth_pb2.ValidateRequest(access_token=this.access_token))
    this_refresh = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=this.refresh_token))
    old = await fails(sign_in(stub))
    notice = (await mailbox.wait_for("alice@example.com"))[0]

    assert other_access.reason == "TOKEN_REVOKED"
    assert other_refresh.reason == "REFRESH_TOKEN_INVALID"
    assert this_access.session_id == this.session_id
    assert this_refresh.session_id == this.session_id
    assert old.reason == "INVALID_CREDENTIALS"
    assert (await sign_in(stub, password=NEW_PASSWORD)).user_id == user
    assert notice["Subject"] == "Your password was changed"
    [event] = [e for e in await _events(app, "user.password_changed")]
    assert (event["reason"], str(event["session_id"])) == ("self_service", this.session_id)


@pytest.mark.parametrize(("current", "new", "reason", "field"), [
    ("not the password at all", NEW_PASSWORD, "INVALID_CREDENTIALS", None),
    ("", NEW_PASSWORD, "INVALID_ARGUMENT", "current_password"),
    (PASSWORD, "short", "INVALID_ARGUMENT", "new_password"),
    (PASSWORD, "alice-example-password", "INVALID_ARGUMENT", "new_password"),
])
async def test_change_password_refuses_wrong_or_bad_passwords(stub, user, current, new,
                                                              reason, field):
    """A wrong current password is INVALID_CREDENTIALS; a bad new one names its field;
    nothing changes either way."""
    session = await sign_in(stub)

    failure = await fails(stub.ChangePassword(auth_pb2.ChangePasswordRequest(
        current_password=current, new_password=new), metadata=bearer(session.access_token)))

    assert failure.reason == reason
    assert failure.fields == ([field] if field else [])
    assert (await sign_in(stub)).user_id == user


async def test_change_password_needs_a_bearer_token(stub, user):
    """Without a token: UNAUTHENTICATED TOKEN_MISSING; with a revoked one: TOKEN_REVOKED."""
    session = await sign_in(stub)
    await stub.Revoke(auth_pb2.RevokeRequest(token=session.refresh_token))

    missing = await fails(stub.ChangePassword(auth_pb2.ChangePasswordRequest(
        current_password=PASSWORD, new_password=NEW_PASSWORD)))
    revoked = await fails(stub.ChangePassword(auth_pb2.ChangePasswordRequest(
        current_password=PASSWORD, new_password=NEW_PASSWORD),
        metadata=bearer(session.access_token)))

    assert (missing.code, missing.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    assert revoked.reason == "TOKEN_REVOKED"


async def test_reset_password_revokes_every_session(stub, mailbox, user, app):
    """RequestPasswordReset mails a code; ResetPassword with it sets the new password,
    revokes every session and returns nothing; the person signs in again."""
    sessions = [await sign_in(stub), await sign_in(stub)]

    requested = await stub.RequestPasswordReset(auth_pb2.RequestPasswordResetRequest(
        email="alice@example.com"))
    code = await mailbox.code("alice@example.com")
    answer = await stub.ResetPassword(auth_pb2.ResetPasswordRequest(
        email="alice@example.com", code=code, new_password=NEW_PASSWORD))
    refused = [await fails(stub.Validate(auth_pb2.ValidateRequest(access_token=s.access_token)))
               for s in sessions]

    assert requested == auth_pb2.RequestPasswordResetResponse()
    assert answer == auth_pb2.ResetPasswordResponse()
    assert [r.reason for r in refused] == ["TOKEN_REVOKED"] * 2
    assert (await fails(sign_in(stub))).reason == "INVALID_CREDENTIALS"
    assert (await sign_in(stub, password=NEW_PASSWORD)).user_id == user
    changed = await mailbox.wait_for("alice@example.com", 2)
    assert changed[1]["Subject"] == "Your password was changed"
    assert [e["reason"] for e in await _events(app, "user.password_changed")] == ["reset"]


async def test_reset_request_for_an_unknown_address_answers_the_same_and_sends_nothing(
        stub, mailbox, user):
    """RequestPasswordReset answers byte-identically whether the account exists."""
    known = await stub.RequestPasswordReset(auth_pb2.RequestPasswordResetRequest(
        email="alice@example.com"))
    unknown = await stub.RequestPasswordReset(auth_pb2.RequestPasswordResetRequest(
        email="nobody@example.com"))
    await mailbox.wait_for("alice@example.com")

    assert known.SerializeToString() == unknown.SerializeToString() == b""
    assert [m["To"] for m in mailbox.received()] == ["alice@example.com"]


async def test_a_reset_also_verifies_the_address(stub, mailbox):
    """A reset code proves the address as a verification code does."""
    await _signed_up(stub, mailbox)
    await stub.RequestPasswordReset(auth_pb2.RequestPasswordResetRequest(
        email="bob@example.com"))
    code = await mailbox.code("bob@example.com", 2)

    await stub.ResetPassword(auth_pb2.ResetPasswordRequest(
        email="bob@example.com", code=code, new_password=NEW_PASSWORD))

    assert (await sign_in(stub, "bob@example.com", NEW_PASSWORD)).access_token


async def test_every_step_is_audited(stub, mailbox, app):
    """Each step of the flows leaves its auth_events row, in order, without a code or
    password in it."""
    code = await _signed_up(stub, mailbox)
    await fails(stub.VerifyIdentifier(auth_pb2.VerifyIdentifierRequest(
        email="bob@example.com", code=f"{(int(code) + 1) % 10 ** 8:08d}")))
    await stub.ResendVerification(auth_pb2.ResendVerificationRequest(email="bob@example.com"))
    code = await mailbox.code("bob@example.com", 2)
    await stub.VerifyIdentifier(auth_pb2.VerifyIdentifierRequest(email="bob@example.com",
                                                                 code=code))
    session = await sign_in(stub, "bob@example.com")
    await fails(stub.ChangePassword(auth_pb2.ChangePasswordRequest(
        current_password="not the password at all", new_password=NEW_PASSWORD),
        metadata=bearer(session.access_token)))
    await stub.ChangePassword(auth_pb2.ChangePasswordRequest(
        current_password=PASSWORD, new_password=NEW_PASSWORD),
        metadata=bearer(session.access_token))
    await stub.RequestPasswordReset(auth_pb2.RequestPasswordResetRequest(
        email="bob@example.com"))
    await fails(stub.ResetPassword(auth_pb2.ResetPasswordRequest(
        email="bob@example.com", code="00000000", new_password=OTHER_PASSWORD)))
    code = await mailbox.code("bob@example.com", 4)
    await stub.ResetPassword(auth_pb2.ResetPasswordRequest(
        email="bob@example.com", code=code, new_password=OTHER_PASSWORD))

    async with app.db.connection() as conn:
        rows = await conn.fetch("SELECT kind, reason FROM auth_events"
                                " WHERE kind <> 'signin.success' AND kind NOT LIKE 'key.%'"
                                " ORDER BY id")
    assert [(r["kind"], r["reason"]) for r in rows] == [
        ("user.created", "signup.verify"),
        ("verification.failed", "code_invalid"),
        ("verification.requested", None),
        ("verification.succeeded", None),
        ("password.change_failed", "wrong_password"),
        ("user.password_changed", "self_service"),
        ("password.reset_requested", None),
        ("password.reset_failed", "code_invalid"),
        ("session.revoked", "password_reset"),
        ("user.password_changed", "reset"),
    ]
