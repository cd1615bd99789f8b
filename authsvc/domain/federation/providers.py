"""Identity providers from configuration (``AUTHSVC_PROVIDERS_FILE``, TOML).

Each ``[providers.ID]`` table is an OpenID Connect provider (``issuer``: its
discovery document, key set and ``id_token``) or a plain OAuth 2.0 provider in
GitHub's shape (``authorize_url``, ``token_url``, ``userinfo_url`` and
optionally ``emails_url``, with the JSON fields that hold the subject, the
e-mail and whether it is verified). The client authenticates at the token
endpoint with a secret from the environment or a file (``client_secret_basic``
or ``_post``), with a signed assertion (``private_key_jwt``, RFC 7523, a PEM key
file), or not at all (a public client: PKCE alone). ``client`` talks to them.
"""

from __future__ import annotations

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

from ...config.values import Secret
from ...errors import ConfigError

log = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"[a-z0-9_-]{1,32}")
_TOKEN_AUTH = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")


@dataclass(frozen=True, slots=True)
class ClientKey:
    """The key a private_key_jwt client signs its assertions with."""

    key: Any
    alg: str
    kid: str | None


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
    private_key: Secret[ClientKey] | None = None  # private_key_jwt
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
             "private_key_file", "private_key_kid",
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
    if len(redirect_uris) > 255:  # a flow's state names its redirect_uri in one byte
        raise ConfigError(f"{where}: redirect_uris must list at most 255 URIs")
    client_auth = text("client_auth") or "client_secret_basic"
    if client_auth not in _TOKEN_AUTH:
        raise ConfigError(f"{where}: client_auth must be one of {', '.join(_TOKEN_AUTH)}")
    secret = _secret(where, text("client_secret_env"), text("client_secret_file"), env)
    private_key = None
    if client_auth == "private_key_jwt":
        private_key = _client_key(where, text("private_key_file", required=True) or "",
                                  text("private_key_kid"))
    elif secret is None:
        client_auth = "none"  # a public client: PKCE alone
    return Provider(
        id=name, client_id=text("client_id", required=True) or "", client_secret=secret,
        redirect_uris=redirect_uris,
        scopes=strings("scopes", ("openid", "email", "profile") if issuer else ()),
        client_auth=client_auth, private_key=private_key,
        trust_acr=strings("trust_acr", ()), issuer=issuer,
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


def _client_key(where: str, path: str, kid: str | None) -> Secret[ClientKey]:
    """The PEM private key of private_key_jwt: RSA (RS256), EC P-256 (ES256) or Ed25519
    (EdDSA)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"{where}: private_key_file cannot be read: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise ConfigError(f"{where}: private_key_file is not an unencrypted PEM private "
                          "key") from None
    if isinstance(key, rsa_keys.RSAPrivateKey):
        alg = "RS256"
    elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        alg = "ES256"
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        alg = "EdDSA"
    else:
        raise ConfigError(f"{where}: private_key_file must be an RSA, P-256 or Ed25519 key")
    return Secret(ClientKey(key, alg, kid))
