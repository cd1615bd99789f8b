"""A provider that turns on authsvc (tests/providers/rogue.py: real RS256 keys and
signatures, its answers bent by the test) and one that accepts connections and never
answers (tests/receivers.SilentServer). Each bent answer is refused with its reason;
none signs anyone in or leaves an identity behind.

The cases the rest of the suite already holds against its own provider are not
repeated; these are the ones that need a provider whose token endpoint issues the
bent token itself: an id_token HMAC-signed with the client secret (which OpenID
Connect Core allows and authsvc's asymmetric-only allow-list must not), a nonce left
out, an iss in the token that is not the issuer's, and a provider silent already at
discovery.
"""

from __future__ import annotations

import dataclasses
import threading
import urllib.parse
from pathlib import Path

import asyncpg
import grpc
import pytest

from authsvc.config import Settings
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import fails
from ..providers.config import callback, oidc_section, section, write_providers
from ..providers.rogue import RogueProvider
from ..receivers import SilentServer


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, rogue_provider: RogueProvider,
             silent_provider: SilentServer, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The rogue provider as ``rogue`` and the silent one as ``silent``; sign-up open; a
    one-second bound on each call to a provider."""
    monkeypatch.setenv("AUTHSVC_TEST_ROGUE_SECRET", rogue_provider.client_secret)
    providers = write_providers(
        tmp_path / "providers.toml",
        oidc_section("rogue", rogue_provider, secret_env="AUTHSVC_TEST_ROGUE_SECRET",
                     redirect_uris=[callback("rogue")]),
        section("silent", issuer=silent_provider.url, client_id="authsvc",
                client_secret_env="AUTHSVC_TEST_ROGUE_SECRET",
                redirect_uris=[callback("silent")]))
    return dataclasses.replace(settings, providers_file=providers, signup="open",
                               provider_timeout=1.0)


async def _through_rogue(stub: auth_pb2_grpc.AuthStub,
                         rogue: RogueProvider) -> auth_pb2.FinishProviderSignInResponse:
    started = await stub.StartProviderSignIn(auth_pb2.StartProviderSignInRequest(
        provider="rogue"))
    back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
        rogue.authorize(started.authorization_url)).query))
    return await stub.FinishProviderSignIn(auth_pb2.FinishProviderSignInRequest(
        provider="rogue", flow_id=started.flow_id, state=back["state"], code=back["code"],
        iss=back.get("iss", "")))


async def _identities(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM identities"))
    finally:
        await conn.close()


async def test_the_rogue_provider_signs_in_when_it_behaves(
        stub: auth_pb2_grpc.AuthStub, rogue_provider: RogueProvider) -> None:
    """The control: unbent, the same provider signs its user in (so each refusal below is
    the bend's doing)."""
    signed_in = await _through_rogue(stub, rogue_provider)

    assert signed_in.created and signed_in.access_token


@pytest.mark.parametrize(("bend", "value"), [
    ("alg", "HS256"),          # HMAC keyed with the client secret: allowed by OIDC, not here
    ("alg", "none"),           # unsigned
    ("alg", "unknown-key"),    # RS256 by a key the provider does not publish, its kid
    ("drop", {"nonce"}),       # the nonce left out
    ("claims", {"iss": "http://127.0.0.1:1"}),  # a token claiming another issuer
    ("claims", {"azp": "someone-else", "aud": ["authsvc", "someone-else"]}),
])
async def test_a_bent_id_token_from_the_token_endpoint_is_refused(
        stub: auth_pb2_grpc.AuthStub, rogue_provider: RogueProvider, database_url: str,
        bend: str, value: object) -> None:
    """Each bent id_token, issued by the provider's own token endpoint for a real code,
    is refused UNAUTHENTICATED PROVIDER_RESPONSE_INVALID, and no identity is made."""
    setattr(rogue_provider, bend, value)

    failure = await fails(_through_rogue(stub, rogue_provider))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "PROVIDER_RESPONSE_INVALID")
    assert await _identities(database_url) == 0


async def test_a_token_endpoint_that_holds_its_answer_is_given_up_on(
        stub: auth_pb2_grpc.AuthStub, rogue_provider: RogueProvider) -> None:
    """A token endpoint that does not answer: UNAVAILABLE PROVIDER_UNAVAILABLE once the
    one-second bound passes, not a hang (the provider would hold it two minutes)."""
    started = await stub.StartProviderSignIn(auth_pb2.StartProviderSignInRequest(
        provider="rogue"))
    back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
        rogue_provider.authorize(started.authorization_url)).query))
    rogue_provider.hold_token = threading.Event()

    failure = await fails(stub.FinishProviderSignIn(auth_pb2.FinishProviderSignInRequest(
        provider="rogue", flow_id=started.flow_id, state=back["state"], code=back["code"],
        iss=back["iss"]), timeout=60))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE,
                                              "PROVIDER_UNAVAILABLE")


async def test_a_provider_silent_at_discovery_is_given_up_on(
        stub: auth_pb2_grpc.AuthStub, silent_provider: SilentServer) -> None:
    """A provider that accepts the connection and never answers its discovery document:
    StartProviderSignIn fails UNAVAILABLE PROVIDER_UNAVAILABLE within the bound, and the
    provider was really asked."""
    failure = await fails(stub.StartProviderSignIn(auth_pb2.StartProviderSignInRequest(
        provider="silent"), timeout=60))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE,
                                              "PROVIDER_UNAVAILABLE")
    assert silent_provider.connections >= 1
