"""Access tokens: RFC 9068 JWTs, issued and verified under strict rules.

Verification (RFC 8725):

- only the configured algorithms, and only the algorithm of the key the
  ``kid`` names in the service's own key ring; ``alg`` from the token is
  never trusted, ``jku``/``x5u``/``jwk``/``x5c`` headers are ignored and a
  ``crit`` header is refused (no extension is understood);
- ``typ`` must be ``at+jwt`` (so an ID token or anything else is refused);
- ``iss`` and ``aud`` must equal the configured strings exactly;
- exp, iat, nbf, iss, aud, sub, jti and sid are required and type-checked;
- time claims are checked against the injected clock with a leeway;
- a token living longer than ``max_lifetime`` is refused (authsvc never
  issues one, so it was minted with a stolen key);
- ``amr`` (RFC 8176), ``acr`` and ``auth_time`` (OIDC) are optional, so tokens
  issued before second factors existed still verify; when present they must
  be a list of short strings, a short string and a time;
- the profile claims (``Profile``: OIDC's ``email``, ``email_verified``,
  ``phone_number``, ``phone_number_verified``, ``preferred_username``) are
  optional too, and only in tokens issued with AUTHSVC_ACCESS_TOKEN_PROFILE;
  when present they must be short strings and booleans.

A kid the ring does not hold raises ``UnknownKey`` (a ``TokenInvalid``), so a
verifier can reload its keys once and try again without parsing the header
a second time.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from ..errors import TokenExpired, TokenInvalid
from .keys import SigningKey

TOKEN_TYPE = "at+jwt"  # noqa: S105 (the JWT typ header, not a secret)
MAX_TOKEN_LENGTH = 8192
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "iss", "aud", "sub", "jti", "sid")
MAX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z, the last google.protobuf.Timestamp
_ACCEPTED_TYP = frozenset({"at+jwt", "application/at+jwt"})


class UnknownKey(TokenInvalid):
    """The token names a kid the key ring does not hold (yet)."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        super().__init__()


@dataclass(frozen=True, slots=True)
class TokenRules:
    issuer: str
    audience: str
    algorithms: frozenset[str]
    leeway: int
    # Longest exp - iat accepted: authsvc never issues longer-lived tokens, so a
    # longer one was minted with a stolen key.
    max_lifetime: float = float("inf")


PROFILE_CLAIMS = ("email", "email_verified", "phone_number", "phone_number_verified",
                  "preferred_username")
_PROFILE_STRINGS = frozenset({"email", "phone_number", "preferred_username"})
MAX_PROFILE_STRING = 320  # longer than any identifier authsvc accepts


@dataclass(frozen=True, slots=True)
class Profile:
    """A user's identifiers under OpenID Connect's standard claim names (Core 1.0,
    section 5.1); None where the user has no such identifier.

    A verified flag is there exactly when its identifier is, and it is that
    identifier's own proof (``users.email_verified_at`` / ``phone_verified_at``: a
    code sent to it and redeemed, an operator who created the account with it, or
    an import that said so). A username is chosen, not proven, and has no flag.
    """

    email: str | None = None
    email_verified: bool | None = None
    phone_number: str | None = None
    phone_number_verified: bool | None = None
    preferred_username: str | None = None

    def claims(self) -> dict[str, str | bool]:
        """The claims present, by their OIDC names."""
        found = {name: getattr(self, name) for name in PROFILE_CLAIMS}
        return {name: value for name, value in found.items() if value is not None}


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says."""

    user_id: str
    session_id: str
    token_id: str
    scopes: tuple[str, ...]
    issued_at: float
    not_before: float
    expires_at: float
    amr: tuple[str, ...] = ()
    acr: str | None = None
    auth_time: float | None = None
    # The user's profile when the token carries one (AUTHSVC_ACCESS_TOKEN_PROFILE);
    # None: it carries none, which is not the same as a user without identifiers.
    profile: Profile | None = None

    def check_times(self, now: float, leeway: int) -> None:
        """Raise unless the token is within its lifetime at ``now`` (± leeway)."""
        if now >= self.expires_at + leeway:
            raise TokenExpired()
        if now + leeway < self.not_before or now + leeway < self.issued_at:
            raise TokenInvalid("The access token is not valid yet.")


def issue(key: SigningKey, rules: TokenRules, *, user_id: str, session_id: str,
          scopes: tuple[str, ...], now: float, ttl: int, amr: tuple[str, ...] = (),
          auth_time: float | None = None, profile: Profile | None = None,
          ) -> tuple[str, AccessClaims]:
    """Sign a new access token with ``key``; with ``amr``, also ``acr`` (``acr_of``)
    and ``auth_time``; with ``profile``, its claims."""
    if key.private_key is None:
        raise ValueError("issue() needs a key with its private half")
    iat = int(now)
    acr = acr_of(amr) if amr else None
    when = None if auth_time is None else int(auth_time)
    claims = AccessClaims(user_id=user_id, session_id=session_id, token_id=str(uuid.uuid4()),
                          scopes=scopes, issued_at=iat, not_before=iat, expires_at=iat + ttl,
                          amr=amr, acr=acr, auth_time=when, profile=profile)
    payload: dict[str, Any] = {
        "iss": rules.issuer, "sub": user_id, "aud": rules.audience,
        "iat": iat, "nbf": iat, "exp": iat + ttl,
        "jti": claims.token_id, "sid": session_id,
    }
    if scopes:
        payload["scope"] = " ".join(scopes)
    if amr:
        payload["amr"] = list(amr)
        payload["acr"] = acr
    if when is not None:
        payload["auth_time"] = when
    if profile is not None:
        payload.update(profile.claims())
    token = jwt.encode(payload, key.private_key, algorithm=key.alg,
                       headers={"kid": key.kid, "typ": TOKEN_TYPE})
    return token, claims


# amr values that are a second factor (RFC 8176): a one-time code, a hardware or
# software-bound key (a passkey).
SECOND_FACTORS = frozenset({"otp", "hwk", "swk"})
ACR_ONE_FACTOR = "aal1"
ACR_TWO_FACTORS = "aal2"


def acr_of(amr: tuple[str, ...]) -> str:
    """authsvc's acr values, after NIST SP 800-63B's assurance levels: ``aal2`` when
    a second factor took part, else ``aal1``."""
    return ACR_TWO_FACTORS if SECOND_FACTORS.intersection(amr) else ACR_ONE_FACTOR


def verify(token: str, lookup: Callable[[str], SigningKey | None], rules: TokenRules,
           now: float) -> AccessClaims:
    """Verify ``token``; ``lookup`` maps a kid to one of the service's own keys.

    A key past its ``publish_until`` verifies nothing any more (its tokens have
    expired by then, and are refused as expired)."""
    if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise TokenInvalid()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenInvalid() from None
    typ, kid, alg = header.get("typ"), header.get("kid"), header.get("alg")
    if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP:
        raise TokenInvalid()
    if "crit" in header or not isinstance(kid, str) or not isinstance(alg, str):
        raise TokenInvalid()
    if not 0 < len(kid) <= 128:
        raise TokenInvalid()
    key = lookup(kid)
    if key is None:
        raise UnknownKey(kid)
    if alg != key.alg or alg not in rules.algorithms:
        raise TokenInvalid()
    try:
        payload = jwt.decode(
            token, key.public_key, algorithms=[key.alg], audience=rules.audience,
            issuer=rules.issuer,
            options={"require": list(REQUIRED_CLAIMS), "verify_exp": False,
                     "verify_nbf": False, "verify_iat": False, "strict_aud": True},
        )
    except (jwt.PyJWTError, ValueError, TypeError):
        raise TokenInvalid() from None
    claims = _claims(payload, rules)
    claims.check_times(now, rules.leeway)
    if not key.published_at(now):  # retired for longer than any token it signed lives
        raise TokenInvalid()
    return claims


def _claims(payload: dict[str, Any], rules: TokenRules) -> AccessClaims:
    sub, sid, jti = payload["sub"], payload["sid"], payload["jti"]
    times = [payload["iat"], payload["nbf"], payload["exp"]]
    scope = payload.get("scope", "")
    amr, acr, auth_time = payload.get("amr", []), payload.get("acr"), payload.get("auth_time")
    if (
        not isinstance(amr, list) or len(amr) > 16
        or not all(isinstance(v, str) and 0 < len(v) <= 32 for v in amr)
        or not (acr is None or (isinstance(acr, str) and 0 < len(acr) <= 128))
        or not (auth_time is None or (isinstance(auth_time, int | float)
                                      and not isinstance(auth_time, bool)
                                      and 0 <= auth_time <= MAX_TIME))
    ):
        raise TokenInvalid()
    if (
        payload["iss"] != rules.issuer or payload["aud"] != rules.audience
        or not all(isinstance(v, str) and 0 < len(v) <= 128 for v in (sub, sid, jti))
        or not all(isinstance(t, int | float) and not isinstance(t, bool)
                   and 0 <= t <= MAX_TIME for t in times)  # also refuses NaN and infinity
        or not isinstance(scope, str)
        or times[2] - times[0] > rules.max_lifetime
    ):
        raise TokenInvalid()
    return AccessClaims(user_id=sub, session_id=sid, token_id=jti,
                        scopes=tuple(scope.split()), issued_at=float(times[0]),
                        not_before=float(times[1]), expires_at=float(times[2]),
                        amr=tuple(amr), acr=acr,
                        auth_time=None if auth_time is None else float(auth_time),
                        profile=_profile(payload))


def _profile(payload: dict[str, Any]) -> Profile | None:
    """The token's profile claims; None when it carries none."""
    found = {name: payload[name] for name in PROFILE_CLAIMS if name in payload}
    if not found:
        return None
    for name, value in found.items():
        if name in _PROFILE_STRINGS:
            if not (isinstance(value, str) and 0 < len(value) <= MAX_PROFILE_STRING):
                raise TokenInvalid()
        elif not isinstance(value, bool):
            raise TokenInvalid()
    return Profile(**found)


class TokenCache:
    """A bounded cache of verified claims, each kept until a moment given per entry.

    Thread-safe for the sync interceptor's pool threads. When full, the oldest
    entry goes. What the caller must still check on a hit (time claims,
    revocation) stays the caller's business.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: dict[str, tuple[AccessClaims, float]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str, now: float) -> AccessClaims | None:
        entry = self._entries.get(token)
        if entry is None or now >= entry[1]:
            return None
        return entry[0]

    def put(self, token: str, claims: AccessClaims, until: float) -> None:
        if self._capacity <= 0:
            return
        with self._lock:
            entries = self._entries
            if len(entries) >= self._capacity and token not in entries:
                del entries[next(iter(entries))]
            entries[token] = (claims, until)

    def evict_expired(self, now: float) -> None:
        with self._lock:
            for token in [t for t, (_, until) in self._entries.items() if now >= until]:
                del self._entries[token]
