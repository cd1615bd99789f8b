"""Identity providers from configuration (``AUTHSVC_PROVIDERS_FILE``, TOML).

Each ``[providers.ID]`` table is an OpenID Connect provider (``issuer``: its
discovery document, key set and ``id_token``) or a plain OAuth 2.0 provider in
GitHub's shape (``authorize_url``, ``token_url``, ``userinfo_url`` and
optionally ``emails_url``, with the JSON fields that hold the subject, the
e-mail and whether it is verified). docs/guides/federation.md shows both.

What is taken from a provider, and how it is checked:

- OpenID Connect: the discovery document is fetched once (its ``issuer`` must
  be the configured one, byte for byte), the key set when first needed and
  again when an ``id_token`` names an unknown ``kid`` (at most once per
  ``JWKS_REFRESH_INTERVAL``, so forged kids cannot make authsvc hammer the
  provider). An ``id_token`` is verified like authsvc's own tokens: ``alg``
  from the allow-list of asymmetric algorithms only (never ``none`` or HS*),
  the key by ``kid`` from the provider's set (never from the token's headers),
  ``iss``, ``aud`` (the client id), ``azp`` when present or when there are
  several audiences, ``exp``/``nbf``/``iat`` against the injected clock with
  the leeway, ``sub`` present, and the flow's ``nonce``.
- OAuth 2.0: the user-information answer's subject field (numbers become
  strings); the e-mail is verified only when the provider says so (the
  ``emails_url`` list's primary, verified entry, or a true verified field).
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import re
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from ...clock import Clock
from ...config.values import Secret
from ...errors import ConfigError, ProviderResponseInvalid
from .http import ProviderHttp

log = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"[a-z0-9_-]{1,32}")
ID_TOKEN_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                 "ES256", "ES384", "ES512", "EdDSA"})
JWKS_REFRESH_INTERVAL = 60.0
MAX_FIELD = 320  # a subject or an e-mail longer than this is not believed
# The key type each algorithm needs, and the algorithm pyjwt assumes for a key that
# names none (such a key may serve any algorithm of its family).
_FAMILY = {alg: "RSA" for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")} | {
    "ES256": "EC", "ES384": "EC", "ES512": "EC", "EdDSA": "OKP"}
_DEFAULT_ALG = {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA"}
_TOKEN_AUTH = ("client_secret_basic", "client_secret_post", "none")


@dataclass(frozen=True, slots=True)
class Asserted:
    """Who the provider says signed in."""

    subject: str
    email: str | None
    email_verified: bool
    acr: str | None = None


@dataclass(frozen=True, slots=True)
class Endpoints:
    authorization: str
    token: str
    userinfo: str | None
    jwks: str | None
    issuer: str | None  # RFC 9207: the iss a callback must carry (None: not checked)
    iss_required: bool  # the provider advertised authorization_response_iss_parameter_supported


@dataclass(slots=True)
class Provider:
    """One configured provider; ``oidc`` when it has an issuer."""

    id: str
    client_id: str
    client_secret: Secret[str] | None
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    client_auth: str = "client_secret_basic"
    trust_acr: tuple[str, ...] = ()
    issuer: str | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    userinfo_url: str | None = None
    emails_url: str | None = None
    subject_field: str = "sub"
    email_field: str = "email"
    email_verified_field: str = "email_verified"
    _endpoints: Endpoints | None = field(default=None, repr=False)
    _keys: dict[str, jwt.PyJWK] = field(default_factory=dict, repr=False)
    _keys_fetched_at: float | None = field(default=None, repr=False)

    @property
    def oidc(self) -> bool:
        return self.authorize_url is None


def load(path: Path | None, environ: Mapping[str, str] | None = None) -> dict[str, Provider]:
    """The providers the file declares ({} without one); ``ConfigError`` names what is
    wrong (never a secret)."""
    if path is None:
        return {}
    env = os.environ if environ is None else environ
    try:
        document = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"AUTHSVC_PROVIDERS_FILE cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"AUTHSVC_PROVIDERS_FILE is not valid TOML: {exc}") from None
    tables = document.get("providers")
    if not isinstance(tables, dict):
        raise ConfigError("AUTHSVC_PROVIDERS_FILE must have [providers.ID] tables")
    return {name: _provider(name, table, env) for name, table in tables.items()}


def _provider(name: str, table: Any, env: Mapping[str, str]) -> Provider:
    where = f"AUTHSVC_PROVIDERS_FILE: [providers.{name}]"
    if not ID_PATTERN.fullmatch(name) or not isinstance(table, dict):
        raise ConfigError(f"{where}: the id must match [a-z0-9_-]{{1,32}}")
    known = {"issuer", "authorize_url", "token_url", "userinfo_url", "emails_url",
             "client_id", "client_secret_env", "client_secret_file", "redirect_uris",
             "scopes", "client_auth", "trust_acr", "subject_field", "email_field",
             "email_verified_field"}
    if unknown := sorted(set(table) - known):
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")

    def text(key: str, required: bool = False) -> str | None:
        value = table.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: {key} must be a non-empty string")
        return value

    def url(key: str, required: bool = False) -> str | None:
        value = text(key, required)
        if value is not None and urllib.parse.urlsplit(value).scheme not in ("http", "https"):
            raise ConfigError(f"{where}: {key} must be an http(s) URL")
        return value

    def strings(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = table.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{where}: {key} must be a list of strings")
        return tuple(value)

    issuer = url("issuer")
    oauth = {key: url(key) for key in ("authorize_url", "token_url", "userinfo_url")}
    if issuer is None and not all(oauth.values()):
        raise ConfigError(f"{where}: needs issuer (OpenID Connect), or authorize_url, "
                          "token_url and userinfo_url (OAuth 2.0)")
    if issuer is not None and any(oauth.values()):
        raise ConfigError(f"{where}: issuer and authorize_url/token_url/userinfo_url "
                          "exclude each other")
    redirect_uris = strings("redirect_uris", ())
    if not redirect_uris:
        raise ConfigError(f"{where}: redirect_uris must list at least one URI")
    client_auth = text("client_auth") or "client_secret_basic"
    if client_auth not in _TOKEN_AUTH:
        raise ConfigError(f"{where}: client_auth must be one of {', '.join(_TOKEN_AUTH)}")
    secret = _secret(where, text("client_secret_env"), text("client_secret_file"), env)
    if secret is None:
        client_auth = "none"  # a public client: PKCE alone
    return Provider(
        id=name, client_id=text("client_id", required=True) or "", client_secret=secret,
        redirect_uris=redirect_uris,
        scopes=strings("scopes", ("openid", "email", "profile") if issuer else ()),
        client_auth=client_auth, trust_acr=strings("trust_acr", ()), issuer=issuer,
        authorize_url=oauth["authorize_url"], token_url=oauth["token_url"],
        userinfo_url=oauth["userinfo_url"], emails_url=url("emails_url"),
        subject_field=text("subject_field") or "sub",
        email_field=text("email_field") or "email",
        email_verified_field=text("email_verified_field") or "email_verified")


def _secret(where: str, variable: str | None, path: str | None, env: Mapping[str, str],
            ) -> Secret[str] | None:
    if variable is not None and path is not None:
        raise ConfigError(f"{where}: client_secret_env and client_secret_file exclude "
                          "each other")
    if variable is not None:
        value = env.get(variable, "").strip()
        if not value:
            raise ConfigError(f"{where}: the variable {variable} (client_secret_env) is "
                              "not set")
        return Secret(value)
    if path is not None:
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{where}: client_secret_file cannot be read: "
                              f"{exc.strerror}") from None
        if not value:
            raise ConfigError(f"{where}: client_secret_file is empty")
        return Secret(value)
    return None


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
        if provider.client_auth == "client_secret_basic" and secret is not None:
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
