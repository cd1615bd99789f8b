"""Passkeys stay off until AUTHSVC_WEBAUTHN_RP_ID is set, and passwordless sign-in
until AUTHSVC_PASSKEY_SIGN_IN=true."""

from __future__ import annotations

import dataclasses

import grpc
import pytest

from authsvc.config import Settings
from authsvc.errors import ConfigError
from authsvc.v1 import auth_pb2

from ..helpers import bearer, fails, sign_in


async def test_without_a_relying_party_passkeys_are_failed_precondition(stub, user):
    """BeginPasskeyRegistration with passkeys unconfigured: FAILED_PRECONDITION
    PASSKEYS_DISABLED."""
    token = (await sign_in(stub)).access_token

    failure = await fails(stub.BeginPasskeyRegistration(
        auth_pb2.BeginPasskeyRegistrationRequest(), metadata=bearer(token)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                              "PASSKEYS_DISABLED")


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, webauthn_rp_id=None)


async def test_passwordless_needs_its_setting(settings, database_url):
    """AUTHSVC_PASSKEY_SIGN_IN without a relying party is refused at start-up, and an
    rp id without origins too, each naming the variable."""
    with pytest.raises(ConfigError, match="AUTHSVC_PASSKEY_SIGN_IN"):
        Settings.from_env({"AUTHSVC_PASSKEY_SIGN_IN": "true"})
    with pytest.raises(ConfigError, match="AUTHSVC_WEBAUTHN_ORIGINS"):
        Settings.from_env({"AUTHSVC_WEBAUTHN_RP_ID": "example.com"})
    parsed = Settings.from_env({"AUTHSVC_WEBAUTHN_RP_ID": "example.com",
                                "AUTHSVC_WEBAUTHN_ORIGINS": "https://example.com/, "
                                                            "https://app.example.com"})
    assert parsed.webauthn_origins == ("https://example.com", "https://app.example.com")
