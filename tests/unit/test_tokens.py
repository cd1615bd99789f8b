"""Access tokens (``authsvc.core.tokens``) and the one check every verifier runs
(``authsvc.core.verification``), with keys made here and the clock injected."""

from __future__ import annotations

import dataclasses

import pytest

from authsvc.clock import FakeClock
from authsvc.core.keys import KeyRing, SigningKey, public_jwk
from authsvc.core.tokens import (
    AccessClaims,
    TokenCache,
    TokenRules,
    UnknownKey,
    issue,
    verify,
)
from authsvc.core.verification import ReloadGate, TokenCheck
from authsvc.domain.keycrypto import generate_private_key
from authsvc.errors import TokenExpired, TokenInvalid, TokenMissing

NOW = 1_800_000_000.0
TTL = 900
LEEWAY = 30
RULES = TokenRules(issuer="authsvc", audience="authsvc", algorithms=frozenset({"ES256"}),
                   leeway=LEEWAY, max_lifetime=TTL)


def make_key(publish_until: float | None = None) -> SigningKey:
    """A fresh ES256 key that signs from an hour before NOW, published until
    ``publish_until`` (None: for as long as it is not retired)."""
    private = generate_private_key("ES256")
    jwk = public_jwk("ES256", private.public_key())
    return SigningKey(kid=jwk["kid"], alg="ES256", public_key=private.public_key(),
                      private_key=private, jwk=jwk, created_at=NOW - 3600,
                      activates_at=NOW - 3600, retired_at=None, publish_until=publish_until)


@pytest.fixture
def key() -> SigningKey:
    return make_key()


@pytest.fixture
def ring(key: SigningKey) -> KeyRing:
    return KeyRing([key])


def mint(key: SigningKey, ttl: int = TTL, now: float = NOW,
         rules: TokenRules = RULES) -> tuple[str, AccessClaims]:
    return issue(key, rules, user_id="user-1", session_id="session-1", scopes=("read", "write"),
                 now=now, ttl=ttl)


def claims_at(start: float) -> AccessClaims:
    return AccessClaims(user_id="u", session_id="s", token_id="t", scopes=(),
                        issued_at=start, not_before=start, expires_at=start + TTL)


# --- issue and verify -------------------------------------------------------------------


def test_an_issued_token_verifies_to_the_claims_it_was_issued_with(key, ring):
    """A token issued under the rules verifies, within its lifetime, to its own claims."""
    token, issued = mint(key)

    verified = verify(token, ring.get, RULES, NOW + 60)

    assert verified == issued
    assert (verified.user_id, verified.session_id, verified.scopes) == (
        "user-1", "session-1", ("read", "write"))
    assert (verified.issued_at, verified.not_before, verified.expires_at) == (
        NOW, NOW, NOW + TTL)


def test_a_token_is_accepted_until_exp_plus_leeway_and_expired_exactly_then(key, ring):
    """A second before exp + leeway the token verifies; at exp + leeway it is TokenExpired."""
    token, issued = mint(key)

    just_before = verify(token, ring.get, RULES, NOW + TTL + LEEWAY - 1)
    with pytest.raises(TokenExpired):
        verify(token, ring.get, RULES, NOW + TTL + LEEWAY)

    assert just_before == issued


@pytest.mark.parametrize("rules", [dataclasses.replace(RULES, issuer="someone-else"),
                                   dataclasses.replace(RULES, audience="payments")],
                         ids=["issuer", "audience"])
def test_a_token_for_another_issuer_or_audience_is_invalid(key, ring, rules):
    """A token whose iss or aud differs from the rules' is TokenInvalid."""
    token, _ = mint(key)

    with pytest.raises(TokenInvalid) as caught:
        verify(token, ring.get, rules, NOW)

    assert type(caught.value) is TokenInvalid


def test_an_unknown_kid_raises_unknown_key_carrying_the_kid(key):
    """A kid the ring does not hold is UnknownKey (a TokenInvalid) naming that kid."""
    token, _ = mint(key)

    with pytest.raises(UnknownKey) as caught:
        verify(token, KeyRing([]).get, RULES, NOW)

    assert caught.value.kid == key.kid
    assert isinstance(caught.value, TokenInvalid)


def test_a_token_living_longer_than_max_lifetime_is_invalid(key, ring):
    """exp - iat of max_lifetime verifies; one second more is TokenInvalid."""
    longest, _ = mint(key, ttl=TTL)
    too_long, _ = mint(key, ttl=TTL + 1)

    accepted = verify(longest, ring.get, RULES, NOW)
    with pytest.raises(TokenInvalid) as caught:
        verify(too_long, ring.get, RULES, NOW)

    assert accepted.expires_at - accepted.issued_at == TTL
    assert type(caught.value) is TokenInvalid


def test_a_token_whose_alg_is_not_its_keys_is_invalid(key):
    """The key the kid names has another algorithm than the token's header: TokenInvalid."""
    token, _ = mint(key)
    relabelled = KeyRing([dataclasses.replace(key, alg="EdDSA")])
    rules = dataclasses.replace(RULES, algorithms=frozenset({"ES256", "EdDSA"}))

    with pytest.raises(TokenInvalid) as caught:
        verify(token, relabelled.get, rules, NOW)

    assert type(caught.value) is TokenInvalid


def test_an_algorithm_outside_the_rules_is_invalid(key, ring):
    """A token signed with its key's own algorithm is TokenInvalid when the rules do not
    allow that algorithm."""
    token, _ = mint(key)
    rules = dataclasses.replace(RULES, algorithms=frozenset({"EdDSA"}))

    with pytest.raises(TokenInvalid) as caught:
        verify(token, ring.get, rules, NOW)

    assert type(caught.value) is TokenInvalid


def test_a_key_past_publish_until_verifies_nothing(key):
    """Once its key is past publish_until, even an unexpired token is TokenInvalid; a
    second earlier it verifies."""
    retiring = dataclasses.replace(key, publish_until=NOW + 100)
    ring = KeyRing([retiring])
    token, issued = mint(retiring)

    still_published = verify(token, ring.get, RULES, NOW + 99)
    with pytest.raises(TokenInvalid) as caught:
        verify(token, ring.get, RULES, NOW + 100)

    assert still_published == issued
    assert type(caught.value) is TokenInvalid


# --- the cache of verified claims -------------------------------------------------------


def test_token_cache_serves_an_entry_until_its_moment():
    """An entry is served before its ``until`` and not from that moment on."""
    cache = TokenCache(capacity=4)
    claims = claims_at(NOW)
    cache.put("a", claims, until=NOW + 10)

    before, at = cache.get("a", NOW + 9.999), cache.get("a", NOW + 10)

    assert (before, at) == (claims, None)


def test_token_cache_evicts_the_oldest_entry_when_full():
    """At capacity, a new token pushes out the entry put first; re-putting a held token
    evicts nothing."""
    cache = TokenCache(capacity=2)
    cache.put("a", claims_at(NOW), until=NOW + 10)
    cache.put("b", claims_at(NOW + 1), until=NOW + 10)
    cache.put("b", claims_at(NOW + 2), until=NOW + 10)

    cache.put("c", claims_at(NOW + 3), until=NOW + 10)

    assert len(cache) == 2
    assert [cache.get(t, NOW) for t in ("a", "b", "c")] == [
        None, claims_at(NOW + 2), claims_at(NOW + 3)]


def test_token_cache_evict_expired_drops_only_entries_past_their_moment():
    """evict_expired(now) removes entries whose ``until`` is now or earlier, and keeps
    the rest."""
    cache = TokenCache(capacity=4)
    cache.put("gone", claims_at(NOW), until=NOW + 5)
    cache.put("kept", claims_at(NOW), until=NOW + 6)

    cache.evict_expired(NOW + 5)

    assert len(cache) == 1
    assert cache.get("kept", NOW + 5) == claims_at(NOW)


def test_token_cache_of_capacity_zero_holds_nothing():
    """A cache of capacity 0 stores nothing."""
    cache = TokenCache(capacity=0)

    cache.put("a", claims_at(NOW), until=NOW + 10)

    assert (len(cache), cache.get("a", NOW)) == (0, None)


# --- TokenCheck: verification as Validate and the LocalVerifier run it ------------------


def test_token_check_serves_a_cache_hit_but_still_checks_its_times(key):
    """A token verified once is served from the cache (its key may be gone), yet a clock
    that moved before its nbf - leeway makes even the cached token TokenInvalid."""
    keys = {key.kid: key}
    clock = FakeClock(start=NOW)
    check = TokenCheck(RULES, keys.get, clock, cache_size=10)
    token, issued = mint(key)
    check.claims(token)
    keys.clear()  # a second signature check would now raise UnknownKey

    from_cache = check.claims(token)
    clock.now = NOW - LEEWAY - 1
    with pytest.raises(TokenInvalid) as caught:
        check.claims(token)

    assert from_cache == issued
    assert type(caught.value) is TokenInvalid


def test_token_check_turns_an_unknown_kid_into_token_invalid_once_keys_are_reloaded(key):
    """An unknown kid is UnknownKey the first time and plain TokenInvalid with
    keys_reloaded=True."""
    check = TokenCheck(RULES, KeyRing([]).get, FakeClock(start=NOW), cache_size=10)
    token, _ = mint(key)

    with pytest.raises(UnknownKey) as first:
        check.claims(token)
    with pytest.raises(TokenInvalid) as reloaded:
        check.claims(token, keys_reloaded=True)

    assert first.value.kid == key.kid
    assert type(reloaded.value) is TokenInvalid


def test_token_check_refuses_an_empty_token_as_missing(ring):
    """An empty token is TokenMissing, not TokenInvalid."""
    check = TokenCheck(RULES, ring.get, FakeClock(start=NOW), cache_size=10)

    with pytest.raises(TokenMissing):
        check.claims("")


# --- ReloadGate ---------------------------------------------------------------------------


def test_reload_gate_lets_one_reload_through_per_interval():
    """The first reload is due at once; the next only when ``interval`` seconds have passed
    on the injected monotonic clock."""
    monotonic = FakeClock(start=100.0)
    gate = ReloadGate(5.0, monotonic)

    first, again = gate.due(), gate.due()
    monotonic.advance(4.999)
    too_soon = gate.due()
    monotonic.advance(0.001)
    on_time = gate.due()

    assert (first, again, too_soon, on_time) == (True, False, False, True)


def test_reload_gate_counts_a_reload_reported_by_loaded():
    """A reload reported with loaded() starts the interval as one let through would."""
    monotonic = FakeClock(start=100.0)
    gate = ReloadGate(5.0, monotonic)
    gate.loaded()

    monotonic.advance(4)
    during = gate.due()
    monotonic.advance(1)
    after = gate.due()

    assert (during, after) == (False, True)


# --- amr, acr and auth_time (second factors) ------------------------------------------


def test_amr_acr_and_auth_time_round_trip(key, ring):
    """A token issued with amr and auth_time verifies to them, with acr aal2 when a second
    factor took part."""
    token, issued = issue(key, RULES, user_id="u", session_id="s", scopes=(), now=NOW,
                          ttl=TTL, amr=("pwd", "otp"), auth_time=NOW - 100)

    verified = verify(token, ring.get, RULES, NOW)

    assert verified == issued
    assert (verified.amr, verified.acr, verified.auth_time) == (("pwd", "otp"), "aal2",
                                                                NOW - 100)


def test_a_token_without_amr_still_verifies(key, ring):
    """Tokens from before second factors (no amr, acr, auth_time) verify, with none."""
    token, _ = mint(key)

    verified = verify(token, ring.get, RULES, NOW)

    assert (verified.amr, verified.acr, verified.auth_time) == ((), None, None)


@pytest.mark.parametrize("extra", [
    {"amr": "pwd"}, {"amr": [1]}, {"amr": [""]}, {"acr": 2}, {"auth_time": "now"},
    {"auth_time": True}, {"auth_time": -1},
])
def test_malformed_amr_acr_or_auth_time_is_token_invalid(key, ring, extra):
    """amr must be a list of short strings, acr a string, auth_time a time."""
    import jwt

    payload = {"iss": "authsvc", "sub": "u", "aud": "authsvc", "iat": int(NOW),
               "nbf": int(NOW), "exp": int(NOW) + TTL, "jti": "j", "sid": "s", **extra}
    token = jwt.encode(payload, key.private_key, algorithm="ES256",
                       headers={"kid": key.kid, "typ": "at+jwt"})

    with pytest.raises(TokenInvalid):
        verify(token, ring.get, RULES, NOW)
