"""Passkeys in a real browser: Debian's Chromium, driven by
playwright-core, with CDP's WebAuthn domain (``WebAuthn.enable`` and a virtual
authenticator) standing in for the user's platform authenticator.

Through the demo page: sign in with the password, add a passkey, sign out, sign in
with the passkey alone, then with the password and the passkey as second factor;
then the credential (its private key) is copied into a second authenticator whose
sign counter is behind, and that clone's sign-in is refused (PASSKEY_INVALID) and
audited. WebAuthn needs a domain for its relying party id, so the page and the
gateway are reached as ``localhost`` (an IP address cannot be one).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..helpers import PASSWORD
from .test_browser import (  # noqa: F401 (fixtures)
    CLIENT,
    DRIVE_TIMEOUT,
    BrowserStack,
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


@pytest.fixture(scope="module")
def passkey_stack(pg_admin_url: str, template_name: str,
                  gateway_binary: Path) -> Iterator[BrowserStack]:  # noqa: F811 (the fixture)
    """authsvc with passkeys on for rp id localhost (passwordless too), the gateway in
    cookie mode for the demo's origin, and clients/js served as http://localhost:…"""
    demo_server, demo_origin = _serve(CLIENT)
    demo_origin = demo_origin.replace("127.0.0.1", "localhost")
    name = f"authsvc_passkeys_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_database(pg_admin_url, name, template_name))
    url = _with_database(pg_admin_url, name)
    settings = {"AUTHSVC_ARGON2_PROFILE": "test-only-cheapest",
                "AUTHSVC_KEY_ENCRYPTION_KEY":
                    base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="),
                "AUTHSVC_METRICS_LISTEN": "127.0.0.1:0",
                "AUTHSVC_SHUTDOWN_GRACE": "0.5",
                "AUTHSVC_WEBAUTHN_RP_ID": "localhost",
                "AUTHSVC_WEBAUTHN_ORIGINS": demo_origin,
                "AUTHSVC_PASSKEY_SIGN_IN": "true"}
    authsvc = Process([str(VENV_BIN / "authsvc"), "serve", "--listen", "127.0.0.1:0",
                       "--workers", "1", "--database-url", url], env=settings)
    gateway: Process | None = None
    try:
        upstream = authsvc.wait_for(r"listening on (127\.0\.0\.1:\d+)").group(1)
        gateway = Process([str(gateway_binary), "--listen", "127.0.0.1:0", "--upstream", upstream,
                           "--cors-origins", demo_origin, "--refresh-cookie"])
        address = gateway.wait_for(r"listening on http://(127\.0\.0\.1:\d+)").group(1)
        gateway_url = "http://" + address.replace("127.0.0.1", "localhost")
        yield BrowserStack(url, gateway_url, demo_origin, "", settings)
    finally:
        for process in (gateway, authsvc):
            if process is not None:
                process.stop()
        demo_server.shutdown()
        demo_server.server_close()
        asyncio.run(_drop_database(pg_admin_url, name))


def _drive(node: str, chromium: str, stack: BrowserStack, email: str) -> dict[str, Any]:
    config = {"chromium": chromium, "demoUrl": stack.demo_origin, "gateway": stack.gateway,
              "email": email, "password": PASSWORD}
    result = subprocess.run([node, str(CLIENT / "browser-test" / "passkeys.mjs"),
                             json.dumps(config)], cwd=CLIENT, capture_output=True, text=True,
                            timeout=DRIVE_TIMEOUT)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_passkey_signs_in_and_its_clone_is_refused(
        browser_tools: tuple[str, str], passkey_stack: BrowserStack) -> None:  # noqa: F811
    """Add a passkey on the demo page, sign out, sign in with it alone; the password then
    asks for it as the second factor; a clone of the credential with its counter behind
    is refused and audited."""
    node, chromium = browser_tools
    email, user_id = passkey_stack.add_user()

    seen = _drive(node, chromium, passkey_stack, email)

    assert seen["pageErrors"] == []
    assert seen["passwordUserId"] == user_id
    assert seen["registered"].startswith("added ") and seen["registered"].endswith(
        "(10 recovery codes)")
    assert seen["credentialResident"] is True
    assert seen["stateAfterSignOut"] == "signed out"
    assert seen["passkeySignIn"] == "signed in with a passkey"
    assert (seen["passkeyUserId"], seen["stateAfterPasskey"]) == (user_id, "signed in")
    assert seen["secondFactor"] == {"reason": "MFA_REQUIRED", "factors": "passkey recovery_code",
                                    "userId": user_id}
    assert seen["signCountAfterPasskey"] > seen["cloneSignCount"]
    assert seen["cloneSignIn"] == "PASSKEY_INVALID"
    assert seen["stateAfterClone"] == "signed out"
    events = passkey_stack.events()
    assert events.get("factor.passkey_registered") == 1
    assert events.get("factor.passkey_clone_suspected") == 1
    assert events.get("signin.mfa_required") == 1
    assert events.get("signin.success") == 3  # the password, the passkey, both
