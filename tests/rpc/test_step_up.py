"""Step-up in the Python guard (RFC 9470): ``require_amr`` and ``max_age`` per method,
with tokens authsvc issued after a password alone and after a second factor."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from concurrent import futures

import grpc
import pytest

from authsvc.domain.factors import totp
from authsvc.interceptor import AsyncAuthInterceptor, AuthInterceptor, current_claims
from authsvc.v1 import auth_pb2
from authsvc.verifiers import RemoteVerifier

from ..helpers import bearer, fails, parse, sign_in
from .test_factors import enable_totp, error_metadata, mfa_required

SERVICE = "example.v1.Vault"
SECOND_FACTOR = ("otp", "hwk", "swk")


async def _who(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return ",".join(current_claims().amr).encode()


def _handlers(fn):  # type: ignore[no-untyped-def]
    return grpc.method_handlers_generic_handler(SERVICE, {
        name: grpc.unary_unary_rpc_method_handler(fn) for name in ("Read", "Pay", "Close")})


@contextlib.asynccontextmanager
async def vault(server: int, clock) -> AsyncIterator[int]:  # type: ignore[no-untyped-def]
    """Read needs any token; Pay a second factor; Close a second factor within 300 s."""
    verifier = RemoteVerifier(f"127.0.0.1:{server}", clock=clock)
    interceptor = AsyncAuthInterceptor(
        verifier, require_amr={f"/{SERVICE}/Pay": SECOND_FACTOR, f"/{SERVICE}/Close":
                               SECOND_FACTOR},
        max_age={f"/{SERVICE}/Close": 300}, clock=clock)
    guarded = grpc.aio.server(interceptors=[interceptor])
    guarded.add_generic_rpc_handlers((_handlers(_who),))
    port = guarded.add_insecure_port("127.0.0.1:0")
    await guarded.start()
    try:
        yield port
    finally:
        await guarded.stop(None)


async def call(port: int, method: str, token: str) -> bytes:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer: bytes = await channel.unary_unary(f"/{SERVICE}/{method}")(
            b"", metadata=bearer(token))
        return answer


@pytest.fixture
async def second_factor_token(stub, user, database_url) -> str:
    """alice enrols an authenticator app and signs in with it: her access token."""
    first = await sign_in(stub)
    secret, step, _codes = await enable_totp(stub, first.access_token, database_url)
    challenge = await mfa_required(stub)
    done = await stub.CompleteSignIn(auth_pb2.CompleteSignInRequest(
        mfa_token=challenge["mfa_token"], totp=totp.code(secret, step + 1)))
    return str(done.access_token)


async def test_a_password_only_token_is_asked_to_step_up(server, clock, stub, user):
    """amr pwd: Read answers; Pay is UNAUTHENTICATED INSUFFICIENT_USER_AUTHENTICATION with
    error="insufficient_user_authentication" and acr_values, the accepted amr values in
    the ErrorInfo metadata."""
    token = (await sign_in(stub)).access_token
    async with vault(server, clock) as port:
        read = await call(port, "Read", token)
        try:
            await call(port, "Pay", token)
        except grpc.RpcError as error:
            failure, raw = parse(error), error
        else:
            raise AssertionError("Pay answered a password-only token")

    assert read == b"pwd"
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "INSUFFICIENT_USER_AUTHENTICATION")
    assert failure.challenge == (
        'Bearer realm="authsvc", error="insufficient_user_authentication", '
        'error_description="A stronger or more recent authentication is required", '
        'acr_values="aal2"')
    assert error_metadata(raw) == {"amr": "otp hwk swk"}


async def test_a_second_factor_token_passes_until_max_age(server, clock,
                                                          second_factor_token):
    """amr pwd+otp: Pay and Close answer; 301 s after the sign-in Close asks for a fresh
    authentication (max_age="300") while Pay still answers."""
    async with vault(server, clock) as port:
        pay = await call(port, "Pay", second_factor_token)
        close = await call(port, "Close", second_factor_token)
        clock.advance(301)
        later_pay = await call(port, "Pay", second_factor_token)
        stale = await fails(call(port, "Close", second_factor_token))

    assert pay == close == later_pay == b"pwd,otp"
    assert (stale.code, stale.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                          "INSUFFICIENT_USER_AUTHENTICATION")
    assert stale.challenge is not None and stale.challenge.endswith(
        'acr_values="aal2", max_age="300"')


async def test_the_sync_interceptor_steps_up_alike(server, clock, stub, user):
    """The sync AuthInterceptor refuses a password-only token on Pay the same way."""
    token = (await sign_in(stub)).access_token
    verifier = RemoteVerifier(f"127.0.0.1:{server}", clock=clock)

    def sync_who(request, context):  # type: ignore[no-untyped-def]
        return ",".join(current_claims().amr).encode()

    guarded = grpc.server(futures.ThreadPoolExecutor(max_workers=2), interceptors=[
        AuthInterceptor(verifier, require_amr={SERVICE: SECOND_FACTOR}, clock=clock)])
    guarded.add_generic_rpc_handlers((_handlers(sync_who),))
    port = guarded.add_insecure_port("127.0.0.1:0")
    guarded.start()

    def pay() -> grpc.RpcError:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                channel.unary_unary(f"/{SERVICE}/Pay")(b"", metadata=bearer(token))
            except grpc.RpcError as error:
                return error
        raise AssertionError("Pay answered")

    try:
        failure = parse(await asyncio.to_thread(pay))
    finally:
        guarded.stop(None)

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "INSUFFICIENT_USER_AUTHENTICATION")


def test_step_up_keys_are_checked_at_construction():
    """A require_amr key that is neither a service nor a method is a ValueError."""
    with pytest.raises(ValueError, match="require_amr"):
        AsyncAuthInterceptor(RemoteVerifier("127.0.0.1:1"), require_amr={"a/b": ("otp",)})
