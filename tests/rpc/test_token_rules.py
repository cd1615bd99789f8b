"""The token rules authsvc publishes beside its key set, and the LocalVerifier that
reads them instead of being told (``authsvc.guard.rules``).

authsvc runs here with rules that differ from every default (issuer, audience,
leeway, lifetime), so a verifier that fell back to defaults would refuse its
tokens or accept what authsvc refuses.
"""

from __future__ import annotations

import dataclasses
import logging

import grpc
import pytest

from authsvc.core import tokens
from authsvc.core.tokens import TokenRules
from authsvc.errors import TokenExpired, TokenInvalid
from authsvc.v1 import auth_pb2
from authsvc.verifiers import LocalVerifier

from ..helpers import eventually, fails, sign_in

ISSUER = "https://id.example.test"
AUDIENCE = "orders"
LEEWAY = 5
TTL = 300
PUBLISHED = TokenRules(issuer=ISSUER, audience=AUDIENCE, algorithms=frozenset({"ES256"}),
                       leeway=LEEWAY, max_lifetime=TTL)


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, issuer=ISSUER, audience=AUDIENCE,
                               clock_leeway=LEEWAY, access_token_ttl=TTL)


@pytest.fixture
async def told_nothing(server, clock, watcher):
    """A LocalVerifier given no token rule at all."""
    async with LocalVerifier(f"127.0.0.1:{server}", clock=clock,
                             access_token=lambda: watcher) as verifier:
        yield verifier


def minted(app, clock, **rules) -> str:
    """An access token signed with authsvc's own current key under ``rules``
    (the published ones, with the changes given)."""
    key = app.keystore.ring.signer(clock())
    ttl = rules.pop("ttl", TTL)
    token, _ = tokens.issue(key, dataclasses.replace(PUBLISHED, **rules), user_id="u-1",
                            session_id="s-1", scopes=(), now=clock(), ttl=ttl)
    return token


async def test_get_jwks_publishes_the_rules_validate_applies(stub):
    """GetJwks answers authsvc's issuer, audience, algorithm, access-token lifetime and
    leeway beside the keys."""
    response = await stub.GetJwks(auth_pb2.GetJwksRequest())

    assert response.rules == auth_pb2.TokenRules(
        issuer=ISSUER, audience=AUDIENCE, algorithms=["ES256"],
        access_token_ttl_seconds=TTL, leeway_seconds=LEEWAY)
    assert len(response.keys) == 1


async def test_a_verifier_told_nothing_verifies_with_the_published_rules(told_nothing, stub,
                                                                        user):
    """A LocalVerifier built without issuer, audience, leeway or lifetime adopts what
    authsvc publishes and accepts authsvc's tokens."""
    signed_in = await sign_in(stub)

    claims = await told_nothing.verify_async(signed_in.access_token)

    assert (claims.user_id, claims.session_id) == (user, signed_in.session_id)
    assert told_nothing.rules == PUBLISHED
    assert told_nothing.revocations.window == TTL + 3 * LEEWAY


async def test_a_token_for_another_audience_is_refused(told_nothing, app, clock, stub, user):
    """A token signed with authsvc's own key whose aud is not the published audience is
    refused, by the verifier told nothing as by Validate."""
    other = minted(app, clock, audience="authsvc")
    assert (await told_nothing.verify_async(minted(app, clock))).user_id == "u-1"

    with pytest.raises(TokenInvalid):
        await told_nothing.verify_async(other)
    failure = await fails(stub.Validate(auth_pb2.ValidateRequest(access_token=other)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "TOKEN_INVALID")


async def test_the_published_leeway_and_lifetime_are_applied(told_nothing, app, clock, stub,
                                                            user):
    """Past exp by more than the published leeway (but less than the default 30 s) a
    token is expired; one living longer than the published lifetime is invalid."""
    longer = minted(app, clock, ttl=TTL + 1)
    signed_in = await sign_in(stub)
    clock.advance(TTL + LEEWAY + 1)

    with pytest.raises(TokenExpired):
        await told_nothing.verify_async(signed_in.access_token)
    clock.advance(-(TTL + LEEWAY + 1))
    with pytest.raises(TokenInvalid):
        await told_nothing.verify_async(longer)


async def test_a_given_rule_wins_and_a_mismatch_is_logged_once(server, app, clock, stub, user,
                                                             watcher, caplog):
    """An audience given to the verifier is the one it checks, whatever authsvc
    publishes; the difference is logged as one warning however often the key set is
    fetched."""
    caplog.set_level(logging.WARNING, logger="authsvc.guard.rules")
    fetches = []

    class Count(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation, details, request):
            if details.method.endswith("/GetJwks"):
                fetches.append(details.method)
            return continuation(details, request)

    channel = grpc.intercept_channel(grpc.insecure_channel(f"127.0.0.1:{server}"), Count())
    signed_in = await sign_in(stub)
    try:
        async with LocalVerifier(channel, clock=clock, audience="billing",
                                 jwks_interval=0.05, access_token=lambda: watcher) as verifier:
            await eventually(lambda: len(fetches) >= 3, 10, "three key set fetches")
            with pytest.raises(TokenInvalid):
                await verifier.verify_async(signed_in.access_token)
            accepted = await verifier.verify_async(minted(app, clock, audience="billing"))
            rules = verifier.rules
    finally:
        channel.close()

    assert accepted.user_id == "u-1"
    assert rules == dataclasses.replace(PUBLISHED, audience="billing")
    warnings = [r.getMessage() for r in caplog.records if r.name == "authsvc.guard.rules"]
    assert warnings == ["audience given as 'billing', but authsvc publishes 'orders'; "
                        "verifying with the given value"]
