"""The whole self-service walk, as a person's app would make it, over gRPC
and over the HTTP edge: `authsvc serve` and the real gateway as processes, mail
delivered by the server's outbox to a real SMTP server (aiosmtpd).

sign-up → the code arrives → verify → sign in → change password (the other
session refused, this one fine) → forgot password → code → reset → every old
session refused, the new password signs in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, fails
from ..helpers import bearer as grpc_bearer
from ..receivers import Mailbox
from . import test_gateway
from .test_gateway import Stack, bearer, call

pytestmark = pytest.mark.go  # the gateway is built with Go
# The gateway tests' fixtures: the built binary, and stacks of authsvc and gateway.
gateway_binary = test_gateway.gateway_binary
stack_factory = test_gateway.stack_factory
CHANGED = "purple monkey dishwasher 42"
RESET = "a brand new passphrase 99"


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox().start()
    yield box
    box.stop()


@pytest.fixture(scope="module")
def accounts_stack(stack_factory: Any, mailbox: Mailbox) -> Stack:
    """authsvc in verify mode, mailing through ``mailbox``, and the gateway before it."""
    return stack_factory({"AUTHSVC_SIGNUP": "verify", "AUTHSVC_SMTP_URL": mailbox.url,  # type: ignore[no-any-return]
                          "AUTHSVC_SMTP_FROM": "authsvc@example.com",
                          "AUTHSVC_OUTBOX_RETRY_BASE": "0.1",
                          "AUTHSVC_OUTBOX_RETRY_MAX": "1"})


def _post(stack: Stack, path: str, body: dict[str, Any], token: str | None = None) -> Any:
    return call(stack.address, "POST", path, body, bearer(token) if token else ())


async def test_the_walk_over_the_http_edge(accounts_stack: Stack, mailbox: Mailbox) -> None:
    """Every step of the walk through the gateway, with the HTTP statuses and reasons
    a browser app sees."""
    stack, email = accounts_stack, "walker-http@example.com"

    signed_up = _post(stack, "/v1/auth/signup", {"email": email, "password": PASSWORD})
    code = await mailbox.code(email)
    unverified = _post(stack, "/v1/auth/signin", {"email": email, "password": PASSWORD})
    verified = _post(stack, "/v1/auth/verify", {"email": email, "code": code})
    this = _post(stack, "/v1/auth/signin", {"email": email, "password": PASSWORD}).json
    other = _post(stack, "/v1/auth/signin", {"email": email, "password": PASSWORD}).json
    changed = _post(stack, "/v1/auth/password/change",
                    {"current_password": PASSWORD, "new_password": CHANGED},
                    this["access_token"])
    other_after_change = _post(stack, "/v1/auth/validate", {}, other["access_token"])
    this_after_change = _post(stack, "/v1/auth/validate", {}, this["access_token"])
    this = _post(stack, "/v1/auth/refresh", {"refresh_token": this["refresh_token"]}).json
    requested = _post(stack, "/v1/auth/password/reset/request", {"email": email})
    reset_code = await mailbox.code(email, 3)  # after the code and the change notice
    reset = _post(stack, "/v1/auth/password/reset",
                  {"email": email, "code": reset_code, "new_password": RESET})
    after_reset = [_post(stack, "/v1/auth/validate", {}, this["access_token"]),
                   _post(stack, "/v1/auth/refresh", {"refresh_token": this["refresh_token"]})]
    old_password = _post(stack, "/v1/auth/signin", {"email": email, "password": CHANGED})
    new_password = _post(stack, "/v1/auth/signin", {"email": email, "password": RESET})

    assert (signed_up.status, signed_up.json) == (200, {})
    assert (unverified.status, unverified.reason()) == (401, "IDENTIFIER_NOT_VERIFIED")
    assert (verified.status, verified.json) == (200, {})
    assert (changed.status, changed.json) == (200, {})
    assert (other_after_change.status, other_after_change.reason()) == (401, "TOKEN_REVOKED")
    assert this_after_change.status == 200
    assert (requested.status, requested.json) == (200, {})
    assert (reset.status, reset.json) == (200, {})
    assert [(r.status, r.reason()) for r in after_reset] == [
        (401, "TOKEN_REVOKED"), (401, "REFRESH_TOKEN_INVALID")]
    assert (old_password.status, old_password.reason()) == (401, "INVALID_CREDENTIALS")
    assert new_password.status == 200 and new_password.json["access_token"]
    subjects = [m["Subject"] for m in await mailbox.wait_for(email, 4)]
    assert subjects == ["Your verification code", "Your password was changed",
                        "Your password reset code", "Your password was changed"]


async def test_the_walk_over_grpc(accounts_stack: Stack, mailbox: Mailbox) -> None:
    """The same walk with the generated stubs against `authsvc serve` itself."""
    upstream = accounts_stack.authsvc.wait_for(r"listening on (127\.0\.0\.1:\d+)").group(1)
    email = "walker-grpc@example.com"
    async with grpc.aio.insecure_channel(upstream) as channel:
        stub = auth_pb2_grpc.AuthStub(channel)

        await stub.SignUp(auth_pb2.SignUpRequest(email=email, password=PASSWORD))
        code = await mailbox.code(email)
        unverified = await fails(stub.SignIn(auth_pb2.SignInRequest(email=email,
                                                                    password=PASSWORD)))
        await stub.VerifyIdentifier(auth_pb2.VerifyIdentifierRequest(email=email, code=code))
        this = await stub.SignIn(auth_pb2.SignInRequest(email=email, password=PASSWORD))
        other = await stub.SignIn(auth_pb2.SignInRequest(email=email, password=PASSWORD))
        await stub.ChangePassword(auth_pb2.ChangePasswordRequest(
            current_password=PASSWORD, new_password=CHANGED),
            metadata=grpc_bearer(this.access_token))
        other_refused = await fails(stub.Refresh(auth_pb2.RefreshRequest(
            refresh_token=other.refresh_token)))
        this = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=this.refresh_token))
        await stub.RequestPasswordReset(auth_pb2.RequestPasswordResetRequest(email=email))
        reset_code = await mailbox.code(email, 3)
        await stub.ResetPassword(auth_pb2.ResetPasswordRequest(
            email=email, code=reset_code, new_password=RESET))
        this_refused = await fails(stub.Refresh(auth_pb2.RefreshRequest(
            refresh_token=this.refresh_token)))
        access_refused = await fails(stub.Validate(auth_pb2.ValidateRequest(
            access_token=this.access_token)))
        again = await stub.SignIn(auth_pb2.SignInRequest(email=email, password=RESET))

    assert unverified.reason == "IDENTIFIER_NOT_VERIFIED"
    assert other_refused.reason == "REFRESH_TOKEN_INVALID"
    assert this_refused.reason == "REFRESH_TOKEN_INVALID"
    assert access_refused.reason == "TOKEN_REVOKED"
    assert again.access_token and again.user_id == this.user_id
