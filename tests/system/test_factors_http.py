"""Second factors over HTTP, through the real gateway in front of real authsvc: the
curl flow of docs/guides/second-factors.md (enrol an authenticator app, MFA_REQUIRED
with the mfa_token in the JSON body's ErrorInfo, CompleteSignIn), and the RFC 9470
challenge reaching the WWW-Authenticate header."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import asyncpg
import pytest

from authsvc.domain.factors import totp

from ..helpers import PASSWORD
from .test_gateway import (  # noqa: F401 (fixtures)
    Stack,
    bearer,
    call,
    gateway_binary,
    stack,
    stack_factory,
)

pytestmark = pytest.mark.go


def _step(database_url: str) -> int:
    async def read() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return int(await conn.fetchval(
                "SELECT floor(extract(epoch FROM now()) / 30)::bigint"))
        finally:
            await conn.close()
    return asyncio.run(read())


def _error_info(body: dict[str, Any]) -> dict[str, Any]:
    for detail in body["details"]:
        if detail["@type"].endswith("google.rpc.ErrorInfo"):
            return detail  # type: ignore[no-any-return]
    raise AssertionError(body)


def test_the_readme_flow_over_http(stack: Stack) -> None:  # noqa: F811
    """Enrol, confirm (ten recovery codes), then SignIn is 401 MFA_REQUIRED with the
    mfa_token in the ErrorInfo metadata, and /v1/auth/signin/complete answers tokens whose
    Validate says amr pwd+otp."""
    email = stack.add_user()
    first = call(stack.address, "POST", "/v1/auth/signin",
                 {"email": email, "password": PASSWORD}).json
    auth = bearer(first["access_token"])
    enrolled = call(stack.address, "POST", "/v1/auth/factors/totp/enroll", {}, auth)
    assert enrolled.status == 200, enrolled.body
    secret = base64.b32decode(enrolled.json["secret"] + "=" * (-len(enrolled.json["secret"]) % 8))
    step = _step(stack.database_url)
    confirmed = call(stack.address, "POST", "/v1/auth/factors/totp/confirm",
                     {"code": totp.code(secret, step)}, auth)
    assert confirmed.status == 200, confirmed.body
    assert len(confirmed.json["recovery_codes"]) == 10

    asked = call(stack.address, "POST", "/v1/auth/signin", {"email": email, "password": PASSWORD})

    assert asked.status == 401
    assert asked.header("WWW-Authenticate") == 'Bearer realm="authsvc"'
    info = _error_info(asked.json)
    assert info["reason"] == "MFA_REQUIRED"
    assert info["metadata"]["factors"] == "totp recovery_code"
    completed = call(stack.address, "POST", "/v1/auth/signin/complete",
                     {"mfa_token": info["metadata"]["mfa_token"],
                      "totp": totp.code(secret, step + 1)})
    assert completed.status == 200, completed.body
    validated = call(stack.address, "POST", "/v1/auth/validate", {},
                     bearer(completed.json["access_token"]))
    assert (validated.json["amr"], validated.json["acr"]) == (["pwd", "otp"], "aal2")
    listed = call(stack.address, "GET", "/v1/auth/factors", None,
                  bearer(completed.json["access_token"]))
    assert listed.json == {"totp": True, "recovery_codes_left": 10, "passkeys": 0}


def test_the_step_up_challenge_reaches_the_header(stack: Stack) -> None:  # noqa: F811
    """RemoveTotp with a password-only token: 401 with authsvc's RFC 9470 challenge in
    WWW-Authenticate."""
    token = stack.sign_in()["access_token"]

    reply = call(stack.address, "POST", "/v1/auth/factors/totp/remove", {}, bearer(token))

    assert reply.status == 401
    assert reply.header("WWW-Authenticate") == (
        'Bearer realm="authsvc", error="insufficient_user_authentication", '
        'error_description="A stronger or more recent authentication is required", '
        'acr_values="aal2", max_age="300"')
    assert _error_info(reply.json)["reason"] == "INSUFFICIENT_USER_AUTHENTICATION"


