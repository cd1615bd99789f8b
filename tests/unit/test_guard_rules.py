"""How a verifier beside another service settles its token rules
(``authsvc.guard.rules``): what authsvc publishes, overridden by what the service
gives, authsvc's defaults when nothing is published, one warning per differing rule."""

from __future__ import annotations

import logging

from authsvc.core.tokens import TokenRules
from authsvc.guard.rules import DEFAULTS, GivenRules, RuleSource
from authsvc.v1 import auth_pb2

PUBLISHED = auth_pb2.TokenRules(issuer="https://id.example.test", audience="orders",
                                algorithms=["EdDSA"], access_token_ttl_seconds=300,
                                leeway_seconds=0)


def test_published_rules_are_adopted_when_nothing_is_given():
    """With nothing given, every published rule is in force, a zero leeway included."""
    rules = RuleSource(GivenRules()).resolve(PUBLISHED)

    assert rules == TokenRules(issuer="https://id.example.test", audience="orders",
                               algorithms=frozenset({"EdDSA"}), leeway=0, max_lifetime=300)


def test_without_published_rules_the_given_ones_or_authsvcs_defaults_apply():
    """An authsvc that publishes no rules leaves the given values and the defaults."""
    source = RuleSource(GivenRules(audience="orders"))

    rules = source.resolve(None)

    assert rules == TokenRules(issuer="authsvc", audience="orders",
                               algorithms=DEFAULTS.algorithms, leeway=30, max_lifetime=900)
    assert source.initial() == rules


def test_algorithms_authsvc_never_signs_with_are_ignored():
    """A published algorithm outside ES256, EdDSA and RS256 is dropped."""
    published = auth_pb2.TokenRules(issuer="a", audience="b", algorithms=["HS256", "ES256"],
                                    access_token_ttl_seconds=900, leeway_seconds=30)

    rules = RuleSource(GivenRules()).resolve(published)

    assert rules.algorithms == frozenset({"ES256"})


def test_given_rules_win_and_each_difference_is_logged_once(caplog):
    """Given values override the published ones; each differing rule is one warning,
    however often the rules are read again, and an equal given value is none."""
    caplog.set_level(logging.WARNING, logger="authsvc.guard.rules")
    source = RuleSource(GivenRules(issuer="https://id.example.test", leeway=30,
                                   algorithms=frozenset({"ES256", "EdDSA"})))

    first = source.resolve(PUBLISHED)
    again = source.resolve(PUBLISHED)

    assert first == again == TokenRules(
        issuer="https://id.example.test", audience="orders",
        algorithms=frozenset({"ES256", "EdDSA"}), leeway=30, max_lifetime=300)
    assert [r.getMessage() for r in caplog.records] == [
        "algorithms given as ES256,EdDSA, but authsvc publishes EdDSA; verifying with the "
        "given value",
        "leeway given as 30, but authsvc publishes 0; verifying with the given value"]
