"""The tests' providers-file writer (tests/providers/config.py) quotes what it writes."""

from __future__ import annotations

import tomllib
from pathlib import Path

from authsvc.domain.federation import providers

from ..providers.config import callback, section, write_providers


def test_strings_with_quotes_backslashes_and_non_ascii_are_written_as_they_are(
        tmp_path: Path) -> None:
    awkward = tmp_path / 'a "quoted"\\ dir é' / "client.secret"
    path = write_providers(
        tmp_path / "providers.toml",
        section("idp-body", issuer='https://idp.example/"x"\\y', client_id="c\nd",
                client_secret_file=awkward, trust_acr=(), redirect_uris=[callback("idp-body")],
                client_auth=None))

    assert tomllib.loads(path.read_text()) == {"providers": {"idp-body": {
        "issuer": 'https://idp.example/"x"\\y', "client_id": "c\nd",
        "client_secret_file": str(awkward), "trust_acr": [],
        "redirect_uris": ["http://127.0.0.1:8080/v1/auth/providers/idp-body/callback"]}}}


def test_the_written_file_is_what_authsvc_loads(tmp_path: Path) -> None:
    secret = tmp_path / 'se"cret'
    secret.write_text("s3cret\n")
    path = write_providers(
        tmp_path / "providers.toml",
        section("plain", authorize_url="https://p.example/a", token_url="https://p.example/t",
                userinfo_url="https://p.example/u", client_id="c",
                client_secret_file=secret, redirect_uris=["https://app.example/cb"]),
        section("other", authorize_url="https://o.example/a", token_url="https://o.example/t",
                userinfo_url="https://o.example/u", client_id="o",
                client_secret_env="OTHER_SECRET", redirect_uris=["https://app.example/cb"]))

    assert sorted(providers.load(path, {"OTHER_SECRET": "x"})) == ["other", "plain"]
