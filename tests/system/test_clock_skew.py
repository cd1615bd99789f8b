"""Two replicas whose clocks are 20 s apart never accept a revoked session's token, and
never take a retried Refresh for reuse: every stored time is judged by the database's
clock, and how long a revocation is remembered by each replica's monotonic clock."""

from __future__ import annotations

import dataclasses

import grpc
import pytest

from authsvc.clock import FakeClock
from authsvc.runtime.app import running_app
from authsvc.runtime.server import running_server
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, eventually, fails, sign_in, travel

SKEW = 20.0
TTL = 40  # the access-token lifetime of the experiment


@pytest.mark.parametrize("issuer", ["fast", "slow"])
async def test_a_revocation_outlives_the_token_on_every_replica(settings, database_url,
                                                                clock, issuer):
    """The session is revoked on one replica; until its token has expired on the other
    (whose clock is 20 s behind or ahead), that replica refuses it every second, and
    never answers OK: the revocation is not forgotten before the token is dead."""
    short = dataclasses.replace(settings, access_token_ttl=TTL, clock_leeway=30)
    fast, slow = clock, FakeClock(start=clock() - SKEW)
    clocks = {"fast": fast, "slow": slow}
    async with running_app(short, database_url, fast) as on_fast, \
            running_app(short, database_url, slow) as on_slow, \
            running_server(on_fast, "127.0.0.1:0") as (_s1, fast_port), \
            running_server(on_slow, "127.0.0.1:0") as (_s2, slow_port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{fast_port}") as fast_channel, \
            grpc.aio.insecure_channel(f"127.0.0.1:{slow_port}") as slow_channel:
        stubs = {"fast": auth_pb2_grpc.AuthStub(fast_channel),
                 "slow": auth_pb2_grpc.AuthStub(slow_channel)}
        apps = {"fast": on_fast, "slow": on_slow}
        other = "slow" if issuer == "fast" else "fast"
        # The slow replica made a key of its own (none signed yet by its clock): let
        # each replica know the other's, as its housekeeping would.
        for app in apps.values():
            await app.keystore.load()
        await on_fast.accounts.add("email", "alice@example.com", PASSWORD)
        signed_in = await sign_in(stubs[issuer])
        await stubs[issuer].Revoke(auth_pb2.RevokeRequest(token=signed_in.refresh_token))
        await eventually(lambda: apps[other].revocations.is_revoked(signed_in.session_id),
                         10, "the other replica to hear the revocation")

        answers = set()
        for _ in range(TTL + 2 * 30 + 2 * int(SKEW)):  # past every replica's exp + leeway
            for clk in clocks.values():
                clk.advance(1)
            apps[other].revocations.prune()
            failure = await fails(stubs[other].Validate(auth_pb2.ValidateRequest(
                access_token=signed_in.access_token)))
            answers.add(failure.reason)

    assert answers <= {"TOKEN_REVOKED", "TOKEN_EXPIRED"}
    assert "TOKEN_EXPIRED" in answers


@pytest.mark.parametrize("retried_on", ["fast", "slow"])
async def test_a_retried_refresh_is_no_reuse_on_a_replica_20_s_apart(settings, database_url,
                                                                     clock, retried_on):
    """A Refresh answered on one replica and retried on the other (20 s ahead or behind)
    within the grace interval gets the identical successor; after the grace it is reuse
    on either, however the replicas' clocks read."""
    fast, slow = clock, FakeClock(start=clock() - SKEW)
    async with running_app(settings, database_url, fast) as on_fast, \
            running_app(settings, database_url, slow) as on_slow, \
            running_server(on_fast, "127.0.0.1:0") as (_s1, fast_port), \
            running_server(on_slow, "127.0.0.1:0") as (_s2, slow_port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{fast_port}") as fast_channel, \
            grpc.aio.insecure_channel(f"127.0.0.1:{slow_port}") as slow_channel:
        stubs = {"fast": auth_pb2_grpc.AuthStub(fast_channel),
                 "slow": auth_pb2_grpc.AuthStub(slow_channel)}
        for app in (on_fast, on_slow):
            await app.keystore.load()
        await on_fast.accounts.add("email", "alice@example.com", PASSWORD)
        first_on = "slow" if retried_on == "fast" else "fast"
        signed_in = await sign_in(stubs[first_on])
        request = auth_pb2.RefreshRequest(refresh_token=signed_in.refresh_token)
        answered = await stubs[first_on].Refresh(request)

        retried = await stubs[retried_on].Refresh(request)
        await travel(database_url, settings.refresh_reuse_interval + 1, fast, slow)
        late = await fails(stubs[retried_on].Refresh(request))

    assert retried.refresh_token == answered.refresh_token
    assert late.reason == "REFRESH_TOKEN_REUSED"
