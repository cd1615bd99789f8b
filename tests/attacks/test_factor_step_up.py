"""A stolen password-only session against a victim's second factors.

The attacker holds a session from before the victim's first factor. Each test
shows that, once the victim has a factor, the attacker can no longer finish an
enrolment begun earlier: the door asks for a fresh second factor, and the
enrolment itself died when the victim's factor became active. Both failed on the
code before the door (ConfirmTotp and FinishPasskeyRegistration answered OK).
"""

from __future__ import annotations

import dataclasses

import asyncpg
import grpc
import pytest

from authsvc.domain.factors import totp
from authsvc.v1 import auth_pb2

from ..authenticator import Authenticator
from ..helpers import bearer, fails, sign_in
from ..rpc.test_factors import complete, db_step, enable_totp, mfa_required, secret_of
from ..rpc.test_passkeys import ORIGIN, register


@pytest.fixture
def settings(settings):
    """Passkeys on for rp id localhost."""
    return dataclasses.replace(settings, webauthn_rp_id="localhost",
                               webauthn_origins=(ORIGIN,))


async def _count(database_url: str, query: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


async def _factors(stub, token: str) -> auth_pb2.ListFactorsResponse:
    found: auth_pb2.ListFactorsResponse = await stub.ListFactors(
        auth_pb2.ListFactorsRequest(), metadata=bearer(token))
    return found


async def test_a_pending_authenticator_app_cannot_be_confirmed_after_a_passkey(
        stub, user, database_url):
    """The attacker enrols an authenticator app (pending) with the stolen session; the
    victim adds a passkey; the attacker's ConfirmTotp with a right code is
    INSUFFICIENT_USER_AUTHENTICATION, the pending secret is gone, and the victim keeps
    her passkey and her ten recovery codes."""
    stolen = (await sign_in(stub)).access_token
    secret = secret_of(await stub.EnrollTotp(auth_pb2.EnrollTotpRequest(),
                                             metadata=bearer(stolen)))
    victim = (await sign_in(stub)).access_token
    await register(stub, victim, Authenticator(ORIGIN))

    step = await db_step(database_url)
    failure = await fails(stub.ConfirmTotp(
        auth_pb2.ConfirmTotpRequest(code=totp.code(secret, step)), metadata=bearer(stolen)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "INSUFFICIENT_USER_AUTHENTICATION")
    assert await _count(database_url, "SELECT count(*) FROM totp_factors") == 0
    factors = await _factors(stub, victim)
    assert (factors.totp, factors.passkeys, factors.recovery_codes_left) == (False, 1, 10)


async def test_an_unfinished_passkey_registration_dies_when_an_app_is_enabled(
        stub, user, database_url):
    """The attacker begins a passkey registration with the stolen session; the victim
    enables an authenticator app; finishing the ceremony is
    INSUFFICIENT_USER_AUTHENTICATION for the attacker, and PASSKEY_INVALID even for a
    fresh second-factor session (the ceremony died with the weaker state); no passkey
    was added and the victim's recovery codes stand."""
    stolen = (await sign_in(stub)).access_token
    begun = await stub.BeginPasskeyRegistration(auth_pb2.BeginPasskeyRegistrationRequest(),
                                                metadata=bearer(stolen))
    answer = Authenticator(ORIGIN).register(begun.options_json)
    victim = (await sign_in(stub)).access_token
    secret, step, _codes = await enable_totp(stub, victim, database_url)
    finish = auth_pb2.FinishPasskeyRegistrationRequest(ceremony_id=begun.ceremony_id,
                                                       credential_json=answer)

    refused = await fails(stub.FinishPasskeyRegistration(finish, metadata=bearer(stolen)))
    challenge = await mfa_required(stub)
    fresh = (await complete(stub, challenge["mfa_token"],
                            totp=totp.code(secret, step + 1))).access_token
    dead = await fails(stub.FinishPasskeyRegistration(finish, metadata=bearer(fresh)))

    assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "INSUFFICIENT_USER_AUTHENTICATION")
    assert (dead.code, dead.reason) == (grpc.StatusCode.UNAUTHENTICATED, "PASSKEY_INVALID")
    factors = await _factors(stub, fresh)
    assert (factors.totp, factors.passkeys, factors.recovery_codes_left) == (True, 0, 10)
