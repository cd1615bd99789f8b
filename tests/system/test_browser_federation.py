"""Sign-in with another identity provider, in a real browser: Debian's Chromium,
driven by playwright-core (clients/js/browser-test/federation.mjs) through the demo
page's ``signInWithProvider`` against the real gateway and authsvc, and two real
providers on this machine: the zitadel/oidc example OpenID Provider (its login form
filled by the driver) and the GitHub-shape OAuth 2.0 provider (tests/providers).

A first sign-in creates the user and leaves the browser in cookie mode with the
session shared by three tabs; after a sign-out the same person comes back as the same
user; the GitHub shape signs another person in. Refused: a callback carrying another
browser's flow (login CSRF), one without state, a spent one replayed, and a return
target on a foreign origin (before the provider is asked).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ..providers.config import callback, github_section, oidc_section, write_providers
from ..providers.github import OCTO_VERIFIED, GitHubProvider, running_github_provider
from ..providers.http import Browserless
from ..providers.zitadel import UNVERIFIED, VERIFIED, OIDCProvider
from .test_browser import (  # noqa: F401 (fixtures)
    CLIENT,
    DRIVE_TIMEOUT,
    _serve,
    browser_tools,
)
from .test_gateway import (  # noqa: F401 (a fixture)
    VENV_BIN,
    Process,
    _create_database,
    _drop_database,
    _with_database,
    gateway_binary,
)

pytestmark = [pytest.mark.go, pytest.mark.browser]
FOREIGN = "https://evil.example/steal"


@dataclass
class FederationStack:
    database_url: str
    gateway: str
    demo_origin: str
    oidc: OIDCProvider
    github: GitHubProvider

    def fetch(self, query: str, *args: Any) -> list[dict[str, Any]]:
        async def run() -> list[dict[str, Any]]:
            conn = await asyncpg.connect(self.database_url)
            try:
                return [dict(r) for r in await conn.fetch(query, *args)]
            finally:
                await conn.close()
        return asyncio.run(run())


def _free_port() -> int:
    """A port for the gateway, known before it starts: the providers file names its
    callback. (Bound and released here; nothing else on this machine picks ports.)"""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _providers_file(path: Path, gateway: str, oidc: OIDCProvider,
                    github: GitHubProvider) -> Path:
    return write_providers(
        path,
        oidc_section("op", oidc, secret_env="AUTHSVC_TEST_OP_SECRET",
                     redirect_uris=[callback("op", gateway)]),
        github_section("github", github, secret_env="AUTHSVC_TEST_GH_SECRET",
                       redirect_uris=[callback("github", gateway)]))


@pytest.fixture(scope="module")
def federation_stack(pg_admin_url: str, template_name: str, gateway_binary: Path,  # noqa: F811
                     oidc_provider: OIDCProvider,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[FederationStack]:
    """authsvc with both providers configured and sign-up open, the gateway in cookie
    mode for the demo's origin (the only allowed return origin), clients/js served."""
    demo_server, demo_origin = _serve(CLIENT)
    name = f"authsvc_fed_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_database(pg_admin_url, name, template_name))
    url = _with_database(pg_admin_url, name)
    port = _free_port()
    gateway_url = f"http://127.0.0.1:{port}"
    authsvc: Process | None = None
    gateway: Process | None = None
    with running_github_provider() as github:
        providers = _providers_file(tmp_path_factory.mktemp("fed") / "providers.toml",
                                    gateway_url, oidc_provider, github)
        settings = {"AUTHSVC_ARGON2_PROFILE": "test-only-cheapest",
                    "AUTHSVC_KEY_ENCRYPTION_KEY":
                        base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="),
                    "AUTHSVC_METRICS_LISTEN": "127.0.0.1:0",
                    "AUTHSVC_SHUTDOWN_GRACE": "0.5",
                    "AUTHSVC_SIGNUP": "open",
                    "AUTHSVC_PROVIDERS_FILE": str(providers),
                    "AUTHSVC_REDIRECT_ORIGINS": demo_origin,
                    "AUTHSVC_TEST_OP_SECRET": oidc_provider.client_secret,
                    "AUTHSVC_TEST_GH_SECRET": github.client_secret}
        try:
            authsvc = Process([str(VENV_BIN / "authsvc"), "serve", "--listen", "127.0.0.1:0",
                               "--workers", "1", "--database-url", url], env=settings)
            upstream = authsvc.wait_for(r"listening on (127\.0\.0\.1:\d+)").group(1)
            gateway = Process([str(gateway_binary), "--listen", f"127.0.0.1:{port}",
                               "--upstream", upstream, "--cors-origins", demo_origin,
                               "--refresh-cookie"])
            gateway.wait_for(r"listening on http://127\.0\.0\.1:\d+")
            yield FederationStack(url, gateway_url, demo_origin, oidc_provider, github)
        finally:
            for process in (gateway, authsvc):
                if process is not None:
                    process.stop()
            demo_server.shutdown()
            demo_server.server_close()
            asyncio.run(_drop_database(pg_admin_url, name))


def _attackers_callback(stack: FederationStack) -> str:
    """The callback URL of a flow an attacker started at the gateway and signed in to at
    the provider, not followed: what a login-CSRF page would send a victim to."""
    attacker = Browserless()
    started = attacker.get(f"{stack.gateway}/v1/auth/providers/op/start")
    assert started.status == 302 and started.location, (started.status, started.body[:300])
    return stack.oidc.sign_in(started.location, UNVERIFIED.username)


def _drive(node: str, chromium: str, stack: FederationStack) -> dict[str, Any]:
    config = {"chromium": chromium, "demoUrl": stack.demo_origin, "gateway": stack.gateway,
              "stolen": _attackers_callback(stack),
              "oidc": {"id": "op", "origin": stack.oidc.issuer, "username": VERIFIED.username,
                       "password": VERIFIED.password},
              "github": {"id": "github", "origin": stack.github.origin,
                         "login": OCTO_VERIFIED.login, "password": OCTO_VERIFIED.password},
              "foreign": FOREIGN}
    driver = CLIENT / "browser-test" / "federation.mjs"
    result = subprocess.run([node, str(driver), json.dumps(config)], cwd=CLIENT,
                            capture_output=True, text=True, timeout=DRIVE_TIMEOUT,
                            env={**os.environ})
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_sign_in_with_providers_in_chromium(browser_tools: tuple[str, str],  # noqa: F811
                                           federation_stack: FederationStack) -> None:
    """In Chromium: a new user through the OIDC provider, in cookie mode, shared by three
    tabs; the same person again after a sign-out is the same user; the GitHub shape
    signs another in; another browser's callback, a stateless one, a spent one and a
    foreign return target are refused with their reasons."""
    node, chromium = browser_tools

    seen = _drive(node, chromium, federation_stack)

    assert seen["pageErrors"] == []
    # 1. A new user through the OpenID Connect provider, in cookie mode.
    assert seen["before"]["state"] == "signed out"
    assert seen["oidcStartWent"] == ["/v1/auth/providers/op/start"]
    # the flow's binding cookie, one per flow (so tabs may sign in at once)
    [flow_cookie] = seen["flowCookieDuringFlow"]
    assert flow_cookie["name"].startswith("__Host-authsvc_fed_")
    assert (flow_cookie["httpOnly"], flow_cookie["sameSite"]) == (True, "Lax")
    user_id = seen["oidcNew"]["userId"]
    assert seen["oidcNew"]["state"] == "signed in"
    assert seen["oidcReturnedTo"].startswith(federation_stack.demo_origin + "/demo/index.html")
    # as after a password sign-in in cookie mode; the flow cookie is gone
    assert seen["cookies"] == [
        {"name": "__Host-authsvc_refresh", "httpOnly": True, "secure": True, "sameSite": "Strict",
         "path": "/"},
        {"name": "authsvc_session", "httpOnly": False, "secure": True, "sameSite": "Lax",
         "path": "/"}]
    assert seen["profile"] == {"email": VERIFIED.email, "emailVerified": True}
    assert seen["protected"] == {"status": 200, "userId": user_id}
    assert [t["userId"] for t in seen["tabs"]] == [user_id] * 3
    identities = federation_stack.fetch(
        "SELECT provider, subject, user_id::text AS user_id FROM identities ORDER BY provider")
    # 2. Signed out everywhere, then the same person again: the same user.
    assert seen["afterSignOut"] == ["signed out"] * 3
    assert seen["oidcReturning"]["userId"] == user_id
    assert seen["tabsAfterReturning"] == [user_id] * 2
    # 3. The GitHub shape: another person, another user, keyed by GitHub's numeric id.
    github_user = seen["github"]["userId"]
    assert seen["github"]["state"] == "signed in" and github_user != user_id
    assert identities == [
        {"provider": "github", "subject": OCTO_VERIFIED.subject, "user_id": github_user},
        {"provider": "op", "subject": VERIFIED.subject, "user_id": user_id}]
    # 4. Refusals.
    assert seen["csrf"] == {"status": 401, "reason": "FEDERATION_FLOW_INVALID", "fields": []}
    assert seen["victimAfterCsrf"]["state"] == "signed out"
    assert seen["missingState"] == {"status": 401, "reason": "FEDERATION_FLOW_INVALID",
                                    "fields": []}
    assert seen["replay"] == {"status": 401, "reason": "FEDERATION_FLOW_INVALID", "fields": []}
    assert seen["foreign"] == {"status": 400, "reason": "INVALID_ARGUMENT",
                               "fields": ["redirect_to"]}
    assert seen["foreignReachedProvider"] is False
