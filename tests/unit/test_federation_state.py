"""The sealed state of a provider sign-in flow (authsvc/domain/federation/state.py): what
Start seals, Finish reads back whole; anything else reads as nothing."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from authsvc.domain.federation import providers
from authsvc.domain.federation.state import MAX_STATE, SealedFlows, s256
from authsvc.errors import ConfigError

from ..providers.config import section, write_providers

KEK = os.urandom(32)
BINDING = hashlib.sha256(b"flow id").digest()


def _flows(kek: bytes = KEK) -> SealedFlows:
    return SealedFlows(kek, lambda: 1_800_000_000.0, 600)


def test_a_sign_in_flow_reads_back_whole() -> None:
    state, flow = _flows().start(provider="idp", binding_hash=BINDING, app_challenge=None,
                                 redirect_uri_index=1, redirect_to=None, link_user_id=None)
    opened = _flows().open(state)  # another replica: the same key, derived

    assert opened is not None and opened.flow == flow
    assert flow.verifier is not None and flow.challenge == s256(flow.verifier)
    assert (flow.provider, flow.binding_hash, flow.redirect_uri_index, flow.expires_at) == \
        ("idp", BINDING, 1, 1_800_000_600)
    assert opened.state_hash == _flows().open(state).state_hash  # type: ignore[union-attr]


def test_a_link_flow_with_an_apps_challenge_and_a_redirect_reads_back_whole() -> None:
    user = str(uuid.uuid4())
    challenge = s256("v" * 43)
    target = "https://app.example/after/é?x=1"
    state, flow = _flows().start(provider="p" * 32, binding_hash=BINDING,
                                 app_challenge=challenge, redirect_uri_index=255,
                                 redirect_to=target, link_user_id=user)
    opened = _flows().open(state)

    assert opened is not None and opened.flow == flow
    assert (flow.verifier, flow.challenge, flow.redirect_to, flow.link_user_id) == \
        (None, challenge, target, user)


def test_states_are_unique_and_under_the_limit_even_at_their_longest() -> None:
    """The longest flow Start seals: the longest provider id, a link, and a redirect_to
    of the most bytes Start accepts (2048)."""
    kwargs = dict(provider="p" * 32, binding_hash=BINDING, app_challenge=None,
                  redirect_uri_index=0, redirect_to="https://a.example/" + "é" * 1015,
                  link_user_id=str(uuid.uuid4()))
    first, _ = _flows().start(**kwargs)  # type: ignore[arg-type]
    second, _ = _flows().start(**kwargs)  # type: ignore[arg-type]

    assert first != second and first[:16] != second[:16]
    assert len(first) <= MAX_STATE


@pytest.mark.parametrize("spoil", ["other key", "padding", "dot", "unused bits", "empty",
                                   "short"])
def test_anything_but_an_issued_state_reads_as_nothing(spoil: str) -> None:
    kek = os.urandom(32) if spoil == "other key" else KEK
    state, _ = _flows(kek).start(provider="idp", binding_hash=BINDING, app_challenge=None,
                                 redirect_uri_index=0, redirect_to=None, link_user_id=None)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spoiled = {"other key": state, "padding": state + "=" * (-len(state) % 4 or 4),
               "dot": state[:10] + "...." + state[10:],
               "unused bits": state[:-1] + alphabet[alphabet.index(state[-1]) ^ 1],
               "empty": "", "short": state[:28]}[spoil]

    assert _flows().open(spoiled) is None


def test_a_provider_with_more_redirect_uris_than_a_state_can_name_is_refused(
        tmp_path: Path) -> None:
    path = write_providers(
        tmp_path / "providers.toml",
        section("many", authorize_url="https://p.example/a", token_url="https://p.example/t",
                userinfo_url="https://p.example/u", client_id="c",
                redirect_uris=[f"https://app.example/cb/{i}" for i in range(256)]))

    with pytest.raises(ConfigError, match="at most 255"):
        providers.load(path, {})
