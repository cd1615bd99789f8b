"""Passkeys over real gRPC and PostgreSQL, with a software authenticator that signs
what a browser would (``tests.authenticator``): registration, a passkey as the second
factor, passwordless sign-in, sign counters (a cloned credential is refused and
audited), listing and removal, and the settings that switch them on."""

from __future__ import annotations

import dataclasses
import json

import asyncpg
import grpc
import pytest

from authsvc.v1 import auth_pb2

from ..authenticator import Authenticator
from ..helpers import bearer, fails, sign_in
from .test_factors import mfa_required

ORIGIN = "http://localhost:8080"


@pytest.fixture
def settings(settings):
    """The suite's settings with passkeys on for rp id localhost, passwordless too."""
    return dataclasses.replace(settings, webauthn_rp_id="localhost",
                               webauthn_origins=(ORIGIN,), passkey_sign_in=True)


async def register(stub, token: str, device: Authenticator, name: str = "laptop",
                   ) -> auth_pb2.FinishPasskeyRegistrationResponse:
    begun = await stub.BeginPasskeyRegistration(auth_pb2.BeginPasskeyRegistrationRequest(),
                                                metadata=bearer(token))
    finished: auth_pb2.FinishPasskeyRegistrationResponse = \
        await stub.FinishPasskeyRegistration(auth_pb2.FinishPasskeyRegistrationRequest(
            ceremony_id=begun.ceremony_id, credential_json=device.register(begun.options_json),
            name=name), metadata=bearer(token))
    return finished


async def passwordless(stub, device: Authenticator, **assertion_options):
    begun = await stub.BeginPasskeyAssertion(auth_pb2.BeginPasskeyAssertionRequest())
    return await stub.PasskeySignIn(auth_pb2.PasskeySignInRequest(
        assertion=auth_pb2.PasskeyAssertion(
            ceremony_id=begun.ceremony_id,
            credential_json=device.assert_(begun.options_json, **assertion_options))))


@pytest.fixture
async def device(stub, user) -> Authenticator:
    """alice's laptop, registered as a passkey from a password session."""
    laptop = Authenticator(ORIGIN)
    await register(stub, (await sign_in(stub)).access_token, laptop)
    return laptop


async def test_registration_asks_for_a_discoverable_credential(stub, user):
    """The creation options name the relying party and alice, ask for a resident key and
    no attestation."""
    token = (await sign_in(stub)).access_token

    begun = await stub.BeginPasskeyRegistration(auth_pb2.BeginPasskeyRegistrationRequest(),
                                                metadata=bearer(token))

    options = json.loads(begun.options_json)
    assert options["rp"] == {"id": "localhost", "name": "authsvc"}
    assert options["user"]["name"] == "alice@example.com"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["attestation"] == "none"


async def test_a_registered_passkey_is_listed_and_answers_recovery_codes(stub, user):
    """FinishPasskeyRegistration stores the credential (listed with its name) and answers
    ten recovery codes."""
    token = (await sign_in(stub)).access_token
    laptop = Authenticator(ORIGIN)

    finished = await register(stub, token, laptop)

    assert len(finished.recovery_codes) == 10
    listed = await stub.ListPasskeys(auth_pb2.ListPasskeysRequest(), metadata=bearer(token))
    assert [(p.credential_id, p.name, p.synced) for p in listed.passkeys] == [
        (finished.credential_id, "laptop", False)]


async def test_a_registration_ceremony_answers_once(stub, user):
    """The same ceremony finished twice: PASSKEY_INVALID the second time, even with a
    good answer after a bad one (the user still has no factor, so the door lets the
    password-only token through both times)."""
    token = (await sign_in(stub)).access_token
    begun = await stub.BeginPasskeyRegistration(auth_pb2.BeginPasskeyRegistrationRequest(),
                                                metadata=bearer(token))
    answer = Authenticator(ORIGIN).register(begun.options_json)
    wrong_origin = Authenticator("https://evil.example").register(begun.options_json)
    await fails(stub.FinishPasskeyRegistration(auth_pb2.FinishPasskeyRegistrationRequest(
        ceremony_id=begun.ceremony_id, credential_json=wrong_origin), metadata=bearer(token)))
    request = auth_pb2.FinishPasskeyRegistrationRequest(ceremony_id=begun.ceremony_id,
                                                        credential_json=answer)

    failure = await fails(stub.FinishPasskeyRegistration(request, metadata=bearer(token)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "PASSKEY_INVALID")


async def test_a_registration_from_another_origin_is_refused(stub, user):
    """A credential created for https://evil.example: PASSKEY_INVALID, nothing stored."""
    token = (await sign_in(stub)).access_token

    failure = await fails(register(stub, token, Authenticator("https://evil.example")))

    assert failure.reason == "PASSKEY_INVALID"
    listed = await stub.ListPasskeys(auth_pb2.ListPasskeysRequest(), metadata=bearer(token))
    assert list(listed.passkeys) == []


async def test_a_passkey_completes_a_password_sign_in(stub, device):
    """With a passkey, SignIn answers MFA_REQUIRED (factors passkey, recovery_code);
    BeginPasskeyAssertion(mfa_token) and CompleteSignIn(passkey) answer tokens with amr
    pwd+hwk."""
    metadata = await mfa_required(stub)
    begun = await stub.BeginPasskeyAssertion(auth_pb2.BeginPasskeyAssertionRequest(
        mfa_token=metadata["mfa_token"]))

    tokens = await stub.CompleteSignIn(auth_pb2.CompleteSignInRequest(
        mfa_token=metadata["mfa_token"], passkey=auth_pb2.PasskeyAssertion(
            ceremony_id=begun.ceremony_id, credential_json=device.assert_(begun.options_json))))

    assert metadata["factors"] == "passkey recovery_code"
    allowed = json.loads(begun.options_json)["allowCredentials"]
    assert [c["id"] for c in allowed] == [json.loads(device.assert_(begun.options_json))["id"]]
    validated = await stub.Validate(auth_pb2.ValidateRequest(access_token=tokens.access_token))
    assert (list(validated.amr), validated.acr) == (["pwd", "hwk"], "aal2")


async def test_passwordless_sign_in_with_a_synced_passkey(stub, user):
    """A discoverable, synced passkey signs in alone: amr swk+mfa, acr aal2."""
    phone = Authenticator(ORIGIN, synced=True)
    await register(stub, (await sign_in(stub)).access_token, phone)

    tokens = await passwordless(stub, phone)

    assert tokens.user_id == user
    validated = await stub.Validate(auth_pb2.ValidateRequest(access_token=tokens.access_token))
    assert (list(validated.amr), validated.acr) == (["swk", "mfa"], "aal2")


async def test_passwordless_sign_in_needs_user_verification(stub, device):
    """An authenticator that did not verify the user: PASSKEY_INVALID."""
    device.user_verifying = False

    failure = await fails(passwordless(stub, device))

    assert failure.reason == "PASSKEY_INVALID"


async def test_a_cloned_passkey_whose_counter_went_backwards_is_refused(stub, device, app):
    """The original signs in with counter 5; a clone presenting 3 is PASSKEY_INVALID and
    leaves a factor.passkey_clone_suspected audit row; the original still works."""
    clone = device.clone()
    await passwordless(stub, device, count=5)

    failure = await fails(passwordless(stub, clone, count=3))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "PASSKEY_INVALID")
    async with app.db.connection() as conn:
        kinds = [r["kind"] for r in await conn.fetch("SELECT kind FROM auth_events")]
    assert "factor.passkey_clone_suspected" in kinds
    assert (await passwordless(stub, device)).access_token


async def test_a_replayed_assertion_is_refused(stub, device):
    """The same assertion presented with a new ceremony does not match its challenge;
    presented again to its own ceremony, that ceremony is spent."""
    begun = await stub.BeginPasskeyAssertion(auth_pb2.BeginPasskeyAssertionRequest())
    assertion = auth_pb2.PasskeyAssertion(ceremony_id=begun.ceremony_id,
                                          credential_json=device.assert_(begun.options_json))
    await stub.PasskeySignIn(auth_pb2.PasskeySignInRequest(assertion=assertion))

    failure = await fails(stub.PasskeySignIn(auth_pb2.PasskeySignInRequest(
        assertion=assertion)))

    assert failure.reason == "PASSKEY_INVALID"


def respellings(ceremony_id: str) -> list[str]:
    """Other spellings a forgiving base64 decoder reads as the same bytes: padding,
    characters outside the alphabet, and the last character's unused bits set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(ceremony_id[-1])
    same_bytes = alphabet[last ^ 1]  # 54 characters for 40 bytes: 2 bits unused
    return [ceremony_id + "==", ceremony_id[:10] + "...." + ceremony_id[10:],
            ceremony_id[:-1] + same_bytes]


async def test_a_ceremony_answers_once_however_its_id_is_spelled(stub, device):
    """A synced passkey's counter stays 0, so only the spent ceremony stops a captured
    assertion: presented again under another spelling of the same id, it is refused."""
    begun = await stub.BeginPasskeyAssertion(auth_pb2.BeginPasskeyAssertionRequest())
    credential_json = device.assert_(begun.options_json, count=0)
    await stub.PasskeySignIn(auth_pb2.PasskeySignInRequest(assertion=auth_pb2.PasskeyAssertion(
        ceremony_id=begun.ceremony_id, credential_json=credential_json)))

    reasons = [(await fails(stub.PasskeySignIn(auth_pb2.PasskeySignInRequest(
        assertion=auth_pb2.PasskeyAssertion(ceremony_id=spelling,
                                            credential_json=credential_json))))).reason
               for spelling in respellings(begun.ceremony_id)]

    assert len(begun.ceremony_id) == 54
    assert reasons == ["PASSKEY_INVALID"] * 3


async def test_an_assertion_from_another_origin_is_refused(stub, device):
    failure = await fails(passwordless(stub, device, origin="https://evil.example"))

    assert failure.reason == "PASSKEY_INVALID"


async def test_removing_a_passkey_needs_a_fresh_second_factor(stub, user, clock):
    """RemovePasskey with the password-only token it was registered from, or a passkey
    sign-in older than AUTHSVC_STEP_UP_MAX_AGE, is INSUFFICIENT_USER_AUTHENTICATION; with
    a fresh passkey sign-in it removes it (and the recovery codes with the last factor),
    and SignIn answers tokens again."""
    before = (await sign_in(stub)).access_token
    laptop = Authenticator(ORIGIN)
    credential_id = (await register(stub, before, laptop)).credential_id
    request = auth_pb2.RemovePasskeyRequest(credential_id=credential_id)
    weak = await fails(stub.RemovePasskey(request, metadata=bearer(before)))
    older = (await passwordless(stub, laptop)).access_token
    clock.advance(301)
    stale = await fails(stub.RemovePasskey(request, metadata=bearer(older)))
    strong = (await passwordless(stub, laptop)).access_token

    await stub.RemovePasskey(request, metadata=bearer(strong))

    assert weak.reason == stale.reason == "INSUFFICIENT_USER_AUTHENTICATION"
    assert (await sign_in(stub)).access_token
    listed = await stub.ListFactors(auth_pb2.ListFactorsRequest(), metadata=bearer(strong))
    assert (listed.totp, listed.passkeys, listed.recovery_codes_left) == (False, 0, 0)


async def test_adding_a_second_passkey_needs_a_fresh_second_factor(stub, user):
    """With a passkey registered, a password-only session from before cannot register
    another: INSUFFICIENT_USER_AUTHENTICATION."""
    before = (await sign_in(stub)).access_token
    await register(stub, before, Authenticator(ORIGIN))

    failure = await fails(stub.BeginPasskeyRegistration(
        auth_pb2.BeginPasskeyRegistrationRequest(), metadata=bearer(before)))

    assert failure.reason == "INSUFFICIENT_USER_AUTHENTICATION"


async def test_malformed_assertions_are_invalid_argument(stub, device):
    begun = await stub.BeginPasskeyAssertion(auth_pb2.BeginPasskeyAssertionRequest())

    failure = await fails(stub.PasskeySignIn(auth_pb2.PasskeySignInRequest(
        assertion=auth_pb2.PasskeyAssertion(ceremony_id=begun.ceremony_id,
                                            credential_json="{not json"))))

    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT,
                                              ["assertion.credential_json"])


async def test_beginning_a_passwordless_sign_in_writes_nothing(stub, user, database_url):
    """BeginPasskeyAssertion without an mfa_token is public: 200 calls leave no row
    behind (the ceremony lives in its signed id until a credential answers)."""
    for _ in range(200):
        await stub.BeginPasskeyAssertion(auth_pb2.BeginPasskeyAssertionRequest())

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM webauthn_ceremonies")
    finally:
        await conn.close()
    assert rows == 0


async def test_a_forged_or_altered_ceremony_id_is_refused(stub, device):
    """A ceremony id this service did not issue, or one with a byte changed, is
    PASSKEY_INVALID before any credential is looked at."""
    begun = await stub.BeginPasskeyAssertion(auth_pb2.BeginPasskeyAssertionRequest())
    answer = device.assert_(begun.options_json)
    altered = ("A" if begun.ceremony_id[0] != "A" else "B") + begun.ceremony_id[1:]

    for ceremony_id in (altered, "x" * 43):
        failure = await fails(stub.PasskeySignIn(auth_pb2.PasskeySignInRequest(
            assertion=auth_pb2.PasskeyAssertion(ceremony_id=ceremony_id,
                                                credential_json=answer))))
        assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                                  "PASSKEY_INVALID")


async def test_an_expired_passwordless_ceremony_is_refused(stub, device, clock):
    """A ceremony begun more than its lifetime ago (by the issuing server's clock, judged
    against the database's) is PASSKEY_INVALID."""
    clock.advance(-400)  # the ceremony was begun 400 s ago
    begun = await stub.BeginPasskeyAssertion(auth_pb2.BeginPasskeyAssertionRequest())
    clock.advance(400)

    failure = await fails(stub.PasskeySignIn(auth_pb2.PasskeySignInRequest(
        assertion=auth_pb2.PasskeyAssertion(
            ceremony_id=begun.ceremony_id, credential_json=device.assert_(begun.options_json)))))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "PASSKEY_INVALID")
