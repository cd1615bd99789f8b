"""The one door over real gRPC: each kind of rule refuses what it should, for every
method that has it, before any servicer runs."""

from __future__ import annotations

import grpc
import pytest

from authsvc.transport import door

from ..helpers import bearer, parse, sign_in
from .test_factors import enable_totp

STREAMING = {"/authsvc.v1.Auth/WatchRevocations"}


def _named(predicate) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(name for name, rule in door.POLICY.items()
                  if name.startswith("/authsvc.v1.") and predicate(rule))


async def _answer(channel: grpc.aio.Channel, method: str, token: str | None,
                  ) -> grpc.RpcError | None:
    """``method`` with an empty request (and ``token`` as the bearer): its refusal, or
    None when it answered."""
    metadata = bearer(token) if token is not None else None
    try:
        if method in STREAMING:
            async for _ in channel.unary_stream(method)(b"", metadata=metadata):
                pass
        else:
            await channel.unary_unary(method)(b"", metadata=metadata)
    except grpc.RpcError as error:
        return error
    return None


async def _call(channel: grpc.aio.Channel, method: str, token: str | None) -> grpc.RpcError:
    """``method``'s refusal (an answer fails the test)."""
    refusal = await _answer(channel, method, token)
    if refusal is None:
        raise AssertionError(f"{method} answered")
    return refusal


@pytest.mark.parametrize("method", _named(lambda rule: rule.bearer and rule.when is None))
async def test_a_bearer_method_refuses_a_call_without_a_token(channel, method):
    """No token: UNAUTHENTICATED TOKEN_MISSING, whatever the method."""
    failure = parse(await _call(channel, method, None))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "TOKEN_MISSING")


@pytest.mark.parametrize("method", _named(lambda rule: bool(rule.scopes)))
async def test_a_scoped_method_refuses_a_token_without_its_scope(channel, stub, user, method):
    """A user's token without the method's scope: PERMISSION_DENIED INSUFFICIENT_SCOPE."""
    token = (await sign_in(stub)).access_token

    failure = parse(await _call(channel, method, token))

    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED,
                                              "INSUFFICIENT_SCOPE")


@pytest.fixture
async def password_only_token_of_enrolled_user(stub, user, database_url) -> str:
    """alice's access token from a password-only sign-in, after which she enrolled an
    authenticator app (as a session stolen before her first factor would be)."""
    token: str = (await sign_in(stub)).access_token
    await enable_totp(stub, token, database_url)
    return token


@pytest.mark.parametrize("method", _named(
    lambda rule: rule.second_factor is not door.SecondFactor.NOT_NEEDED))
async def test_a_factor_or_password_change_needs_a_fresh_second_factor(
        channel, password_only_token_of_enrolled_user, method):
    """Every method that adds or removes a factor or changes the password refuses a
    password-only token of a user who has a factor: UNAUTHENTICATED
    INSUFFICIENT_USER_AUTHENTICATION (RFC 9470), before its request is looked at."""
    failure = parse(await _call(channel, method, password_only_token_of_enrolled_user))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "INSUFFICIENT_USER_AUTHENTICATION")


@pytest.mark.parametrize("method", _named(
    lambda rule: rule.second_factor is door.SecondFactor.IF_ENROLLED))
async def test_without_a_factor_a_password_only_token_may_add_one(channel, stub, user, method):
    """A user with no second factor yet passes the door with a password-only token (the
    answer is the method's own: an answer, or a refusal of the empty request)."""
    token = (await sign_in(stub)).access_token

    refusal = await _answer(channel, method, token)

    assert refusal is None or parse(refusal).reason != "INSUFFICIENT_USER_AUTHENTICATION"
