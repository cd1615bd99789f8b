"""The server interceptor and the verifiers behind it (authsvc.interceptor, .verifiers)."""

from __future__ import annotations

import asyncio
from concurrent import futures

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from authsvc.interceptor import AuthInterceptor, claims_var, current_claims
from authsvc.runtime.server import running_server
from authsvc.v1 import auth_pb2, auth_pb2_grpc
from authsvc.verifiers import LocalVerifier, RemoteVerifier
from examples.whoami import SERVICE, serving

from ..helpers import bearer, eventually, fails, parse, sign_in


@pytest.fixture
async def local(server, clock, watcher):
    async with LocalVerifier(f"127.0.0.1:{server}", clock=clock,
                             access_token=lambda: watcher) as verifier:
        yield verifier


async def whoami_call(verifier, metadata):
    async with serving(verifier) as port, \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        return await channel.unary_unary(f"/{SERVICE}/Get")(b"", metadata=metadata)


@pytest.mark.parametrize("metadata", [
    (("authorization", "Bearer a.b.c"), ("authorization", "Bearer a.b.c")),
    (("authorization", "Basic YWxpY2U6c2VjcmV0"),),
    (("authorization", "Bearer"),),
])
async def test_ambiguous_or_foreign_authorization_is_refused(local, metadata):
    """Two authorization values, another scheme or an empty Bearer: TOKEN_INVALID,
    error="invalid_request"."""
    failure = await fails(whoami_call(local, metadata))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")
    assert failure.challenge == (
        'Bearer realm="authsvc", error="invalid_request", error_description='
        '"The authorization metadata must hold exactly one Bearer token"')


async def test_the_bearer_scheme_is_case_insensitive(local, stub, user):
    """`bEARER <token>` is accepted (RFC 7235: schemes are case-insensitive)."""
    signed_in = await sign_in(stub)

    answer = await whoami_call(local, (("authorization", f"bEARER {signed_in.access_token}"),))

    assert answer == user.encode()


async def test_an_unknown_kid_refetches_the_key_set_at_most_once_per_interval(server, clock,
                                                                           watcher):
    """Forged kids cannot make the verifier hammer GetJwks."""
    fetches = []

    class Count(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation, details, request):
            if details.method.endswith("/GetJwks"):
                fetches.append(details.method)
            return continuation(details, request)

    channel = grpc.intercept_channel(grpc.insecure_channel(f"127.0.0.1:{server}"), Count())
    key = ec.generate_private_key(ec.SECP256R1())
    async with LocalVerifier(channel, clock=clock, kid_refetch_interval=60,
                             access_token=lambda: watcher) as verifier:
        before = len(fetches)
        for n in range(5):
            token = jwt.encode({"sub": "x"}, key, algorithm="ES256",
                               headers={"kid": f"forged-{n}", "typ": "at+jwt"})
            failure = await fails(whoami_call(verifier, bearer(token)))
            assert failure.reason == "TOKEN_INVALID"
    channel.close()

    assert len(fetches) - before == 1


async def test_past_max_staleness_without_the_feed_the_verifier_fails_closed(app, clock, user,
                                                                             watcher):
    """With authsvc gone, tokens are still accepted for max_staleness, then UNAVAILABLE."""
    now = [0.0]
    async with running_server(app, "127.0.0.1:0") as (server, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            signed_in = await sign_in(auth_pb2_grpc.AuthStub(channel))
        verifier = LocalVerifier(f"127.0.0.1:{port}", clock=clock, max_staleness=5,
                                 access_token=lambda: watcher,
                                 monotonic=lambda: now[0])
        assert await asyncio.to_thread(verifier.start)
        try:
            await server.stop(0)
            await eventually(lambda: not verifier.following, 5,
                             "the verifier to notice its feed has ended")
            within = await verifier.verify_async(signed_in.access_token)
            now[0] += 5.1
            failure = await fails(whoami_call(verifier, bearer(signed_in.access_token)))
        finally:
            await asyncio.to_thread(verifier.close)

    assert within.user_id == user
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE, None)


async def test_the_remote_verifier_asks_validate_and_caches_briefly(server, stub, user, clock):
    """Positive answers are cached for cache_ttl seconds: a revocation shows after it."""
    remote = RemoteVerifier(f"127.0.0.1:{server}", cache_ttl=2.0, clock=clock)
    signed_in = await sign_in(stub)
    try:
        first = await whoami_call(remote, bearer(signed_in.access_token))
        await stub.Revoke(auth_pb2.RevokeRequest(token=signed_in.refresh_token))
        cached = await whoami_call(remote, bearer(signed_in.access_token))
        clock.advance(2.0)
        failure = await fails(whoami_call(remote, bearer(signed_in.access_token)))
        missing = await fails(whoami_call(remote, ()))
    finally:
        await remote.aclose()

    assert first == cached == user.encode()
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")
    assert (missing.code, missing.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")


async def test_the_remote_verifier_fails_closed_when_authsvc_is_down(clock):
    """No authsvc to ask: UNAVAILABLE, never a pass."""
    remote = RemoteVerifier("127.0.0.1:1", timeout=0.5, clock=clock)
    try:
        failure = await fails(whoami_call(remote, bearer("a.b.c")))
    finally:
        await remote.aclose()

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE, None)


def _sync_whoami(request, context):
    return current_claims().user_id.encode()


async def test_sync_servers_are_guarded_alike(local, stub, user):
    """grpc.server with AuthInterceptor: claims reach a sync handler; no token is refused;
    the claims do not leak into the pool thread's next call."""
    signed_in = await sign_in(stub)
    seen_after = []

    def peek(request, context):
        seen_after.append(claims_var.get())
        return b""

    public = f"/{SERVICE}/Peek"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1),
                         interceptors=[AuthInterceptor(local, public=[public])])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Get": grpc.unary_unary_rpc_method_handler(_sync_whoami),
        "Peek": grpc.unary_unary_rpc_method_handler(peek)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    def calls():
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            get = channel.unary_unary(f"/{SERVICE}/Get")
            good = get(b"", metadata=bearer(signed_in.access_token))
            try:
                get(b"")
            except grpc.RpcError as error:
                refused = parse(error)
            channel.unary_unary(public)(b"")
            return good, refused

    try:
        good, refused = await asyncio.to_thread(calls)
    finally:
        server.stop(None)

    assert good == user.encode()
    assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    assert seen_after == [None]

