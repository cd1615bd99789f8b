"""The token rules a verifier beside another service applies, read from authsvc.

authsvc publishes the rules it issues and validates under (issuer, audience,
algorithms, access-token lifetime, leeway) beside its key set, in
``GetJwksResponse.rules``; a verifier reads them with the keys it fetches
anyway, so a service is not configured with copies that can drift. Trusting
them adds no trust: whoever could change the rules in that answer could swap
the keys in it too.

A value the service gives itself wins over the published one (a service that
wants tokens for its own audience says so), and when the two differ the
verifier logs a warning, once per rule. An authsvc that publishes no rules
(a release before they were published) leaves the given values, or authsvc's
defaults (``DEFAULTS``), in force.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..core.tokens import TokenRules
from ..v1 import auth_pb2

log = logging.getLogger(__name__)

ALGORITHMS = frozenset({"ES256", "EdDSA", "RS256"})  # every algorithm authsvc signs with
ACCESS_TOKEN_TTL = 900  # authsvc's default AUTHSVC_ACCESS_TOKEN_TTL

# authsvc's default settings: the rules until (or unless) authsvc publishes its own.
DEFAULTS = TokenRules(issuer="authsvc", audience="authsvc", algorithms=ALGORITHMS,
                      leeway=30, max_lifetime=ACCESS_TOKEN_TTL)


@dataclass(frozen=True, slots=True)
class GivenRules:
    """The rules a service gave its verifier itself; None: take authsvc's."""

    issuer: str | None = None
    audience: str | None = None
    algorithms: frozenset[str] | None = None
    leeway: int | None = None
    max_lifetime: float | None = None


class RuleSource:
    """Merges what a service gave with what authsvc publishes, warning once per rule
    where they differ."""

    def __init__(self, given: GivenRules) -> None:
        self._given = given
        self._warned: set[str] = set()

    def initial(self) -> TokenRules:
        """The rules before authsvc has answered: the given ones, else the defaults."""
        return self._merge(DEFAULTS)

    def resolve(self, published: auth_pb2.TokenRules | None) -> TokenRules:
        """The rules to verify with, given what one GetJwks answer published (None
        when it published none)."""
        if published is None:
            return self.initial()
        offered = TokenRules(
            issuer=published.issuer or DEFAULTS.issuer,
            audience=published.audience or DEFAULTS.audience,
            algorithms=frozenset(published.algorithms) & ALGORITHMS or DEFAULTS.algorithms,
            leeway=published.leeway_seconds if published.leeway_seconds >= 0
            else DEFAULTS.leeway,
            max_lifetime=published.access_token_ttl_seconds
            if published.access_token_ttl_seconds > 0 else DEFAULTS.max_lifetime)
        self._warn_about_mismatches(offered)
        return self._merge(offered)

    def _merge(self, base: TokenRules) -> TokenRules:
        given = self._given
        return TokenRules(
            issuer=base.issuer if given.issuer is None else given.issuer,
            audience=base.audience if given.audience is None else given.audience,
            algorithms=base.algorithms if given.algorithms is None else given.algorithms,
            leeway=base.leeway if given.leeway is None else given.leeway,
            max_lifetime=base.max_lifetime if given.max_lifetime is None
            else given.max_lifetime)

    def _warn_about_mismatches(self, published: TokenRules) -> None:
        for name in ("issuer", "audience", "algorithms", "leeway", "max_lifetime"):
            mine = getattr(self._given, name)
            theirs = getattr(published, name)
            if mine is None or mine == theirs or name in self._warned:
                continue
            self._warned.add(name)
            log.warning("%s given as %s, but authsvc publishes %s; verifying with the "
                        "given value", name, _shown(mine), _shown(theirs))


def _shown(value: object) -> str:
    return ",".join(sorted(value)) if isinstance(value, frozenset) else repr(value)
