"""Browsers, proven in a real one: Debian's Chromium driven by playwright-core.

Starts authsvc (access tokens of ``TTL`` seconds, no clock leeway, so they do
expire) and the gateway with ``--cors-origins`` and ``--refresh-cookie``,
serves clients/js (the built client and its demo page) from two other origins
(one listed, one not), and runs clients/js/browser-test/drive.mjs, which
signs in through the page, opens three tabs, makes them call a protected
endpoint at once after each expiry, signs out in one tab and probes from the
unlisted origin. It prints what it saw; the assertions are here, together
with the audit trail (auth_events) and calls to the gateway.

Needs Chromium (apt package ``chromium``), Node.js, and ``npm ci`` plus a
build in clients/js: ``scripts/install-browser`` does all three and
``scripts/test`` runs it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import http.server
import json
import os
import secrets
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ..helpers import PASSWORD
from .test_gateway import (
    VENV_BIN,
    Process,
    _create_database,
    _drop_database,
    _with_database,
    bearer,
    call,
    gateway_binary,  # noqa: F401 (a fixture)
)

pytestmark = [pytest.mark.go, pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "js"
TTL = 2  # seconds an access token lives: each of the rounds waits about this long
ROUNDS = 20
DRIVE_TIMEOUT = 600  # the whole browser session, on a loaded machine


def _require(found: str | bool | None, what: str) -> str:
    if not found:
        pytest.fail(f"{what} not found: run scripts/install-browser (scripts/test does)")
    return str(found)


@pytest.fixture(scope="module")
def browser_tools() -> tuple[str, str]:
    """Node.js and Debian's Chromium, with clients/js installed and built. Missing
    ones fail the test, naming the script that installs them."""
    node = _require(shutil.which("node"), "node")
    chromium = _require(os.environ.get("AUTHSVC_CHROMIUM") or shutil.which("chromium"), "chromium")
    _require((CLIENT / "node_modules" / "playwright-core").is_dir(),
             "clients/js/node_modules/playwright-core")
    _require((CLIENT / "dist" / "index.js").is_file(), "clients/js/dist (npm run build)")
    return node, chromium


class _Static(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A static file server for ``directory`` on a free port; returns it and its origin."""
    handler = functools.partial(_Static, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@dataclass
class BrowserStack:
    database_url: str
    gateway: str  # http://host:port
    demo_origin: str  # listed in --cors-origins
    other_origin: str  # not listed
    env: dict[str, str]
    gateway_process: Process | None = None  # its log lines, where a test reads them

    def add_user(self) -> tuple[str, str]:
        """A user with a fresh email, through the CLI; returns the email and the user id."""
        email = f"browser-{uuid.uuid4().hex[:10]}@example.com"
        cli = [str(VENV_BIN / "authsvc"), "users"]
        env = {**os.environ, **self.env}
        added = subprocess.run([*cli, "add", "--email", email, "--password-stdin",
                                "--database-url", self.database_url],
                               input=PASSWORD, text=True, capture_output=True, timeout=60, env=env)
        assert added.returncode == 0, added.stderr
        shown = subprocess.run([*cli, "show", "--email", email,
                                "--database-url", self.database_url],
                               text=True, capture_output=True, timeout=60, env=env)
        assert shown.returncode == 0, shown.stderr
        return email, str(json.loads(shown.stdout)["id"])

    def events(self) -> dict[str, int]:
        """How many audit events of each kind the database holds."""
        async def count() -> dict[str, int]:
            conn = await asyncpg.connect(self.database_url)
            try:
                rows = await conn.fetch("SELECT kind, count(*) AS n FROM auth_events GROUP BY kind")
            finally:
                await conn.close()
            return {row["kind"]: row["n"] for row in rows}
        return asyncio.run(count())


@contextlib.contextmanager
def serving_pages(pages: Path, pg_admin_url: str, template_name: str,
                  gateway: Path) -> Iterator[BrowserStack]:
    """authsvc with short-lived access tokens on a database of its own, the gateway
    binary ``gateway`` in cookie mode for one origin, and the directory ``pages``
    served from that origin and from another, unlisted one; all stopped on leaving."""
    demo_server, demo_origin = _serve(pages)
    other_server, other_origin = _serve(pages)
    name = f"authsvc_browser_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_database(pg_admin_url, name, template_name))
    url = _with_database(pg_admin_url, name)
    settings = {"AUTHSVC_ARGON2_PROFILE": "test-only-cheapest",
                "AUTHSVC_KEY_ENCRYPTION_KEY":
                    base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="),
                "AUTHSVC_METRICS_LISTEN": "127.0.0.1:0",
                "AUTHSVC_SHUTDOWN_GRACE": "0.5",
                "AUTHSVC_ACCESS_TOKEN_TTL": str(TTL),
                # The client refreshes by its own clock and the token's expires_in; a
                # leeway keeps a just-expired token checkable for revocation after
                # sign-out (authsvc reports expiry before revocation).
                "AUTHSVC_CLOCK_LEEWAY": "60"}
    authsvc = Process([str(VENV_BIN / "authsvc"), "serve", "--listen", "127.0.0.1:0",
                       "--workers", "1", "--database-url", url], env=settings)
    gateway_process: Process | None = None
    try:
        upstream = authsvc.wait_for(r"listening on (127\.0\.0\.1:\d+)").group(1)
        gateway_process = Process([str(gateway), "--listen", "127.0.0.1:0",
                                   "--upstream", upstream,
                                   "--cors-origins", demo_origin, "--refresh-cookie"])
        address = gateway_process.wait_for(r"listening on http://(127\.0\.0\.1:\d+)").group(1)
        yield BrowserStack(url, f"http://{address}", demo_origin, other_origin, settings,
                           gateway_process)
    finally:
        for process in (gateway_process, authsvc):
            if process is not None:
                process.stop()
        for server in (demo_server, other_server):
            server.shutdown()
            server.server_close()
        asyncio.run(_drop_database(pg_admin_url, name))


@pytest.fixture(scope="module")
def browser_stack(pg_admin_url: str, template_name: str,
                  gateway_binary: Path) -> Iterator[BrowserStack]:  # noqa: F811 (the fixture)
    """The stack of ``serving_pages`` for clients/js: its built client and demo page."""
    with serving_pages(CLIENT, pg_admin_url, template_name, gateway_binary) as stack:
        yield stack


def _drive(node: str, chromium: str, stack: BrowserStack, email: str,
           screenshots: Path | None) -> dict[str, Any]:
    """Runs drive.mjs against the stack; returns what it observed."""
    config = {"chromium": chromium, "demoUrl": stack.demo_origin, "otherUrl": stack.other_origin,
              "gateway": stack.gateway, "email": email, "password": PASSWORD, "rounds": ROUNDS,
              "screenshots": str(screenshots) if screenshots else None}
    result = subprocess.run([node, str(CLIENT / "browser-test" / "drive.mjs"), json.dumps(config)],
                            cwd=CLIENT, capture_output=True, text=True, timeout=DRIVE_TIMEOUT)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_three_tabs_share_one_session_through_expiries_and_sign_out(
        browser_tools: tuple[str, str], browser_stack: BrowserStack, tmp_path: Path) -> None:
    """In Chromium, a cookie-mode session survives 20 expiries met by three tabs at once
    with one refresh each and no reuse, ends in every tab when one signs out, keeps its
    refresh token out of reach of scripts, and is closed to unlisted origins."""
    node, chromium = browser_tools
    email, user_id = browser_stack.add_user()
    shots = Path(os.environ["AUTHSVC_BROWSER_SCREENSHOTS"]) if os.environ.get(
        "AUTHSVC_BROWSER_SCREENSHOTS") else tmp_path

    seen = _drive(node, chromium, browser_stack, email, shots)

    # 1. Signed in through the page, which shows the user id.
    print("sign-out reached the other tabs after (ms):", seen["signOutLatencyMs"])
    assert seen["pageErrors"] == []
    assert seen["shownUserId"] == user_id
    assert seen["shownState"] == "signed in"
    assert sorted(seen["cookies"], key=lambda c: c["name"]) == [
        {"name": "__Host-authsvc_refresh", "httpOnly": True, "secure": True, "sameSite": "Strict",
         "path": "/"},
        # the presence cookie: no secret, readable by the page
        {"name": "authsvc_session", "httpOnly": False, "secure": True, "sameSite": "Lax",
         "path": "/"}]
    # 2. Three tabs, twenty expiries each met by all three at once: every call succeeds,
    # nobody is signed out, one refresh per expiry and no reuse in the audit trail.
    assert seen["tabUsers"] == [user_id] * 3
    assert seen["tabProfiles"] == [{"email": email, "emailVerified": True}] * 3  # userinfo
    assert len(seen["rounds"]) == ROUNDS
    for results in seen["rounds"]:
        assert results == [{"status": 200, "userId": user_id}] * 3
    assert seen["signOutsDuringRounds"] == [0, 0, 0]
    assert seen["refreshesPerRound"] == [[1, 1, 1]] * ROUNDS  # one new token per expiry
    events = browser_stack.events()
    assert events.get("refresh.reuse_detected", 0) == 0
    # Every refresh authsvc made is one the tabs saw as a new token (the last may
    # come after the rounds, when the token comes due while the driver reads it).
    refreshes = seen["refreshesSeen"][0]
    assert seen["refreshesSeen"] == [refreshes] * 3
    assert refreshes in (ROUNDS, ROUNDS + 1)
    assert events.get("refresh.success", 0) == refreshes
    assert events.get("signin.success", 0) == 1
    # 3. Signed out in one tab: the others show it from the broadcast alone (no request
    # of theirs), no refresh cookie is left, and the old access token is refused.
    assert seen["statesAfterSignOut"] == ["signed out"] * 3
    assert seen["otherTabsRequestsDuringSignOut"] == []
    assert all(latency is not None and latency >= 0 for latency in seen["signOutLatencyMs"])
    assert seen["cookiesAfterSignOut"] == []
    assert seen["tokenAfterSignOut"] is None
    old_tokens = set(seen["tokensBeforeSignOut"])
    assert len(old_tokens) == 1  # the tabs share one access token
    reply = call(browser_stack.gateway.removeprefix("http://"), "POST", "/v1/auth/validate", {},
                 bearer(old_tokens.pop()))
    assert reply.status == 401
    assert reply.reason() == "TOKEN_REVOKED"
    # 4. Scripts cannot read the refresh token; an unlisted origin gets no CORS access.
    assert seen["documentCookieHasRefresh"] is False
    # Web storage holds device tokens and whether the page sees the presence cookie:
    # neither is a credential.
    namespace = f"authsvc:{browser_stack.gateway}"
    storage = {**seen["storage"], "keys": sorted(seen["storage"]["keys"])}
    assert storage == {"keys": [f"{namespace}:device:email:{email}",
                                f"{namespace}:presence-cookie"],
                       "holdsRefreshToken": False, "holdsJwt": False}
    assert seen["strangerOrigin"] == browser_stack.other_origin
    assert seen["stranger"] == {"jwks": "TypeError: Failed to fetch",
                                "signIn": "TypeError: Failed to fetch",
                                "refresh": "TypeError: Failed to fetch"}
    assert seen["listedJwks"] == 200
    assert browser_stack.events().get("signin.success", 0) == 1  # the stranger's sign-in never ran


def test_the_javascript_client_unit_tests_pass(browser_tools: tuple[str, str]) -> None:
    """clients/js's node:test suite (against a stand-in gateway) passes on the built client."""
    node, _ = browser_tools
    tests = sorted(str(p) for p in (CLIENT / "test").glob("*.test.mjs"))

    result = subprocess.run([node, "--test", *tests], cwd=CLIENT, capture_output=True, text=True,
                            timeout=300)

    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
