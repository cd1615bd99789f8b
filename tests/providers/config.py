"""The providers file (AUTHSVC_PROVIDERS_FILE) for tests, written from the test providers.

One ``[providers.NAME]`` section per provider, in the format of
authsvc/domain/federation/providers.py (docs/guides/federation.md). Strings are written
as TOML basic strings through ``json.dumps`` (a JSON string is a valid TOML basic
string), so a path or URL with a quote or backslash in it stays what it was.

- ``oidc_section``: an OpenID provider found by discovery (rogue.py, zitadel.py): its
  ``issuer`` and ``client_id``;
- ``github_section``: the GitHub-shape OAuth 2.0 provider (github.py): its endpoints,
  ``client_id``, GitHub's scopes and ``id`` as the subject;
- ``section``: any other shape, key by key;
- ``write_providers``: the file from sections.

The client's secret is named by ``secret_env`` (``client_secret_env``) or
``secret_file`` (``client_secret_file``); any other key of the format goes in ``extra``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from .github import GitHubProvider

Value = str | Path | int | bool | Sequence[str]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class DiscoverableProvider(Protocol):
    """An OpenID provider authsvc finds by discovery from its issuer."""

    @property
    def issuer(self) -> str: ...

    @property
    def client_id(self) -> str: ...


def callback(name: str, base: str = "http://127.0.0.1:8080") -> str:
    """The gateway's callback URL for provider ``name`` under ``base``."""
    return f"{base}/v1/auth/providers/{name}/callback"


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    return "[" + ", ".join(json.dumps(str(item)) for item in value) + "]"


def section(name: str, **keys: Value | None) -> str:
    """The ``[providers.NAME]`` section with ``keys`` (those that are None left out)."""
    lines = [f"[providers.{_key(name)}]"]
    lines += [f"{_key(key)} = {_value(value)}" for key, value in keys.items()
              if value is not None]
    return "\n".join(lines) + "\n"


def _secret(secret_env: str | None, secret_file: Path | None) -> dict[str, Value | None]:
    if secret_env is not None and secret_file is not None:
        raise ValueError("a client secret comes from an environment variable or a file")
    return {"client_secret_env": secret_env, "client_secret_file": secret_file}


def oidc_section(name: str, provider: DiscoverableProvider, *, redirect_uris: Sequence[str],
                 secret_env: str | None = None, secret_file: Path | None = None,
                 **extra: Value) -> str:
    """An OpenID provider's section: its issuer and client id, the client secret's
    source, the redirect URIs, then ``extra`` (``client_auth``, ``trust_acr``, …)."""
    return section(name, issuer=provider.issuer, client_id=provider.client_id,
                   **_secret(secret_env, secret_file), redirect_uris=redirect_uris, **extra)


def github_section(name: str, provider: GitHubProvider, *, redirect_uris: Sequence[str],
                   secret_env: str | None = None, secret_file: Path | None = None,
                   **extra: Value) -> str:
    """The GitHub-shape provider's section: its authorize, token, user and e-mails
    endpoints, its client id, the client secret's source, the redirect URIs, the scopes
    GitHub needs for the user and their e-mails, the numeric ``id`` as the subject, then
    ``extra``."""
    keys: dict[str, Value | None] = {
        "authorize_url": provider.authorize_url, "token_url": provider.token_url,
        "userinfo_url": provider.user_url, "emails_url": provider.emails_url,
        "client_id": provider.client_id, **_secret(secret_env, secret_file),
        "redirect_uris": redirect_uris, "scopes": ("read:user", "user:email"),
        "subject_field": "id"}
    keys.update(extra)
    return section(name, **keys)


def write_providers(path: Path, *sections: str) -> Path:
    """``path`` written as a providers file of ``sections``; returns ``path``."""
    path.write_text("\n".join(sections))
    return path
