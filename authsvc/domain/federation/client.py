"""Talking to identity providers: endpoints, the code exchange, and who signed in.

- OpenID Connect: the discovery document is fetched once (its ``issuer`` must
  be the configured one, byte for byte), the key set when first needed and
  again when an ``id_token`` names an unknown ``kid`` (at most once per
  ``JWKS_REFRESH_INTERVAL`` by the injected clock, so forged kids cannot make
  authsvc hammer the provider). An ``id_token`` is verified like authsvc's own
  tokens: ``alg`` from the allow-list of asymmetric algorithms only (never
  ``none`` or HS*) and matching the key's type, the key by ``kid`` from the
  provider's set (never from the token's headers), ``iss``, ``aud`` (the client
  id), ``azp`` when present or when there are several audiences,
  ``exp``/``nbf``/``iat`` against the injected clock with the leeway, ``sub``
  present, and the flow's ``nonce``. The e-mail comes from the ``id_token``, or
  from the user-info endpoint (whose ``sub`` must be the same) when it has none.
- OAuth 2.0: the user-information answer's subject field (numbers become
  strings); the e-mail is verified only when the provider says so (the
  ``emails_url`` list's primary entry and its verified flag, or a true verified
  field).
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import urllib.parse
from dataclasses import dataclass
from typing import Any

import jwt

from ...clock import Clock
from ...core.b64 import b64url
from ...errors import ProviderResponseInvalid
from .http import ProviderHttp
from .providers import ClientKey, Endpoints, Provider

log = logging.getLogger(__name__)

ID_TOKEN_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                 "ES256", "ES384", "ES512", "EdDSA"})
JWKS_REFRESH_INTERVAL = 60.0
MAX_FIELD = 320  # a subject or an e-mail longer than this is not believed
# The key type each algorithm needs, and the algorithm pyjwt assumes for a key that
# names none (such a key may serve any algorithm of its family).
_FAMILY = {alg: "RSA" for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")} | {
    "ES256": "EC", "ES384": "EC", "ES512": "EC", "EdDSA": "OKP"}
_DEFAULT_ALG = {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA"}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_TTL = 60


@dataclass(frozen=True, slots=True)
class Asserted:
    """Who the provider says signed in."""

    subject: str
    email: str | None
    email_verified: bool
    acr: str | None = None


class ProviderClient:
    """Talks to the configured providers: endpoints, token exchange, who signed in."""

    def __init__(self, http: ProviderHttp, clock: Clock, leeway: int) -> None:
        self._http = http
        self._clock = clock
        self._leeway = leeway

    async def endpoints(self, provider: Provider) -> Endpoints:
        """The provider's endpoints (an OpenID Connect provider's from its discovery
        document, fetched once per process and kept)."""
        if provider._endpoints is not None:
            return provider._endpoints
        if not provider.oidc:
            found = Endpoints(provider.authorize_url or "", provider.token_url or "",
                              provider.userinfo_url, None, provider.issuer, False)
        else:
            issuer = provider.issuer or ""
            answer = await self._http.get(issuer.rstrip("/") + "/.well-known/openid-configuration")
            doc = answer.body if answer.status == 200 and isinstance(answer.body, dict) else {}
            needed = ("authorization_endpoint", "token_endpoint", "jwks_uri")
            if doc.get("issuer") != issuer or not all(
                    isinstance(doc.get(key), str) for key in needed):
                log.warning("identity provider's discovery document refused",
                            extra={"fields": {"provider": provider.id}})
                raise ProviderResponseInvalid()
            userinfo = doc.get("userinfo_endpoint")
            found = Endpoints(doc["authorization_endpoint"], doc["token_endpoint"],
                              userinfo if isinstance(userinfo, str) else None,
                              doc["jwks_uri"], issuer,
                              doc.get("authorization_response_iss_parameter_supported") is True)
        provider._endpoints = found
        return found

    async def authorization_url(self, provider: Provider, *, state: str, nonce: str,
                                challenge: str, redirect_uri: str) -> str:
        endpoints = await self.endpoints(provider)
        query = {"response_type": "code", "client_id": provider.client_id,
                 "redirect_uri": redirect_uri, "state": state,
                 "code_challenge": challenge, "code_challenge_method": "S256"}
        if provider.scopes:
            query["scope"] = " ".join(provider.scopes)
        if provider.oidc:
            query["nonce"] = nonce
        separator = "&" if urllib.parse.urlsplit(endpoints.authorization).query else "?"
        return endpoints.authorization + separator + urllib.parse.urlencode(query)

    async def sign_in(self, provider: Provider, *, code: str, verifier: str,
                      redirect_uri: str, nonce: str) -> Asserted:
        """Exchange the code and say who signed in, every check passed."""
        endpoints = await self.endpoints(provider)
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": redirect_uri, "code_verifier": verifier}
        headers: dict[str, str] = {}
        secret = provider.client_secret.reveal() if provider.client_secret else None
        if provider.client_auth == "private_key_jwt" and provider.private_key is not None:
            form["client_id"] = provider.client_id
            form["client_assertion_type"] = ASSERTION_TYPE
            form["client_assertion"] = self._assertion(provider, endpoints,
                                                       provider.private_key.reveal())
        elif provider.client_auth == "client_secret_basic" and secret is not None:
            pair = (f"{urllib.parse.quote(provider.client_id, safe='')}:"
                    f"{urllib.parse.quote(secret, safe='')}")
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = provider.client_id
            if secret is not None:
                form["client_secret"] = secret
        answer = await self._http.post_form(endpoints.token, form, headers)
        body = answer.body
        if answer.status != 200 or not isinstance(body, dict) or \
                not isinstance(body.get("access_token"), str):
            raise ProviderResponseInvalid()
        if provider.oidc:
            id_token = body.get("id_token")
            if not isinstance(id_token, str):
                raise ProviderResponseInvalid()
            claims = await self._verify_id_token(provider, endpoints, id_token, nonce)
            return await self._oidc_identity(provider, endpoints, claims, body["access_token"])
        return await self._oauth_identity(provider, endpoints, body["access_token"])

    def _assertion(self, provider: Provider, endpoints: Endpoints, key: ClientKey) -> str:
        """RFC 7523 client authentication: a short-lived JWT signed with the client's
        key, its audience the provider's issuer (the token endpoint for plain OAuth
        2.0), one string, as the revision of RFC 7523 asks after the audience
        injection reports of 2025."""
        now = int(self._clock())
        claims = {"iss": provider.client_id, "sub": provider.client_id,
                  "aud": endpoints.issuer or endpoints.token, "iat": now,
                  "exp": now + ASSERTION_TTL,
                  "jti": b64url(os.urandom(16))}
        headers = {"kid": key.kid} if key.kid else None
        return jwt.encode(claims, key.key, algorithm=key.alg, headers=headers)

    async def _verify_id_token(self, provider: Provider, endpoints: Endpoints, token: str,
                               nonce: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise ProviderResponseInvalid() from None
        alg = header.get("alg")
        if alg not in ID_TOKEN_ALGORITHMS:
            raise ProviderResponseInvalid()
        key = await self._key(provider, endpoints, header.get("kid"), alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=[alg], audience=provider.client_id,
                issuer=endpoints.issuer, options={
                    "require": ["iss", "aud", "sub", "exp", "iat"], "verify_exp": False,
                    "verify_nbf": False, "verify_iat": False})
        except (jwt.PyJWTError, TypeError, ValueError):
            raise ProviderResponseInvalid() from None
        now, leeway = self._clock(), self._leeway
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != provider.client_id:
            raise ProviderResponseInvalid()
        times = [claims.get(name) for name in ("exp", "iat", "nbf")]
        if not all(value is None or (isinstance(value, (int, float))
                                     and not isinstance(value, bool)) for value in times):
            raise ProviderResponseInvalid()
        exp, iat, nbf = times
        if exp is None or iat is None or exp <= now - leeway or iat > now + leeway or \
                (nbf is not None and nbf > now + leeway):
            raise ProviderResponseInvalid()
        presented = claims.get("nonce")
        if not isinstance(presented, str) or not hmac.compare_digest(presented.encode(),
                                                                      nonce.encode()):
            raise ProviderResponseInvalid()
        if not isinstance(claims.get("sub"), str) or not 0 < len(claims["sub"]) <= MAX_FIELD:
            raise ProviderResponseInvalid()
        return claims

    async def _key(self, provider: Provider, endpoints: Endpoints, kid: Any, alg: str,
                   ) -> jwt.PyJWK:
        """The provider's key for ``kid``, fetching the set again when the kid is new
        (rate-limited); no kid is accepted only from a set of one key."""
        if not provider._keys or (kid not in provider._keys and self._may_refetch(provider)):
            await self._fetch_keys(provider, endpoints)
        keys = provider._keys
        if kid is None:
            found = next(iter(keys.values())) if len(keys) == 1 else None
        else:
            found = keys.get(kid) if isinstance(kid, str) else None
        if found is None or _FAMILY[alg] != found.key_type or \
                found.algorithm_name not in (alg, _DEFAULT_ALG.get(found.key_type)):
            raise ProviderResponseInvalid()
        return found

    def _may_refetch(self, provider: Provider) -> bool:
        last = provider._keys_fetched_at
        return last is None or self._clock() - last >= JWKS_REFRESH_INTERVAL

    async def _fetch_keys(self, provider: Provider, endpoints: Endpoints) -> None:
        provider._keys_fetched_at = self._clock()
        answer = await self._http.get(endpoints.jwks or "")
        body = answer.body
        if answer.status != 200 or not isinstance(body, dict) or \
                not isinstance(body.get("keys"), list):
            raise ProviderResponseInvalid()
        keys: dict[str, jwt.PyJWK] = {}
        for index, data in enumerate(body["keys"]):
            if not isinstance(data, dict) or data.get("use", "sig") != "sig" or \
                    data.get("kty") not in ("RSA", "EC", "OKP"):
                continue
            try:
                key = jwt.PyJWK(data)
            except (jwt.PyJWTError, TypeError, ValueError):
                continue
            keys[str(data.get("kid", f"#{index}"))] = key
        provider._keys = keys

    async def _oidc_identity(self, provider: Provider, endpoints: Endpoints,
                             claims: dict[str, Any], access_token: str) -> Asserted:
        """The subject from the id_token; the e-mail from it, or from the user-info
        endpoint when the id_token has none (its ``sub`` must be the same)."""
        source = claims
        if "email" not in claims and endpoints.userinfo is not None:
            answer = await self._http.get(endpoints.userinfo,
                                          {"Authorization": f"Bearer {access_token}"})
            if answer.status == 200 and isinstance(answer.body, dict):
                if answer.body.get("sub") != claims["sub"]:
                    raise ProviderResponseInvalid()
                source = answer.body
        acr = claims.get("acr")
        return Asserted(claims["sub"], *_email(source.get("email"),
                                               source.get("email_verified")),
                        acr if isinstance(acr, str) else None)

    async def _oauth_identity(self, provider: Provider, endpoints: Endpoints,
                              access_token: str) -> Asserted:
        bearer = {"Authorization": f"Bearer {access_token}"}
        answer = await self._http.get(endpoints.userinfo or "", bearer)
        body = answer.body
        if answer.status != 200 or not isinstance(body, dict):
            raise ProviderResponseInvalid()
        subject = body.get(provider.subject_field)
        if isinstance(subject, int) and not isinstance(subject, bool):
            subject = str(subject)
        if not isinstance(subject, str) or not 0 < len(subject) <= MAX_FIELD:
            raise ProviderResponseInvalid()
        email, verified = _email(body.get(provider.email_field),
                                 body.get(provider.email_verified_field))
        if provider.emails_url is not None:
            listed = await self._http.get(provider.emails_url, bearer)
            entries = listed.body if listed.status == 200 and isinstance(listed.body, list) \
                else []
            chosen = [e for e in entries if isinstance(e, dict) and e.get("primary") is True]
            if chosen:
                email, verified = _email(chosen[0].get("email"), chosen[0].get("verified"))
        return Asserted(subject, email, verified)


def _email(value: Any, verified: Any) -> tuple[str | None, bool]:
    """The e-mail (lower case) and whether the provider asserts it verified: only a
    literal true (or the string "true" some providers send)."""
    if not isinstance(value, str) or not 3 <= len(value) <= MAX_FIELD or "@" not in value:
        return None, False
    return value.strip().lower(), verified is True or verified == "true"
