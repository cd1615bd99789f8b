"""The browser client's account methods in a real browser: Debian's Chromium, driven
by playwright-core (clients/js/browser-test/account.mjs) through the demo page against
the real gateway and authsvc.

A signed-out page load makes no request (the presence cookie is absent) and a
signed-in one restores its session with one refresh; fetch() keeps the access token
from other origins; an authenticator app is enrolled with a code computed by the
driver, listed, and removed after a step-up sign-in with it; signing out everywhere
ends another browser's session too; a page on an unlisted origin is told
ORIGIN_NOT_ALLOWED, and the gateway logs that origin once.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ..helpers import PASSWORD
from .test_browser import (  # noqa: F401 (fixtures)
    CLIENT,
    DRIVE_TIMEOUT,
    BrowserStack,
    browser_stack,
    browser_tools,
)
from .test_gateway import bearer, call, gateway_binary  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.go, pytest.mark.browser]


def _drive(node: str, chromium: str, stack: BrowserStack, email: str) -> dict[str, Any]:
    config = {"chromium": chromium, "demoUrl": stack.demo_origin, "otherUrl": stack.other_origin,
              "gateway": stack.gateway, "email": email, "password": PASSWORD}
    driver = CLIENT / "browser-test" / "account.mjs"
    result = subprocess.run([node, str(driver), json.dumps(config)], cwd=CLIENT,
                            capture_output=True, text=True, timeout=DRIVE_TIMEOUT)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_account_methods_presence_cookie_api_origins_and_refused_origins(
        browser_tools: tuple[str, str], browser_stack: BrowserStack,  # noqa: F811
        tmp_path: Path) -> None:
    """In Chromium: no request on a signed-out load, one refresh on a signed-in one; no
    bearer to another origin; TOTP enrol, confirm, list, step-up, regenerate, remove; sign
    out everywhere; ORIGIN_NOT_ALLOWED for an unlisted origin, logged once by the gateway."""
    node, chromium = browser_tools
    email, user_id = browser_stack.add_user()

    seen = _drive(node, chromium, browser_stack, email)

    assert seen["pageErrors"] == []
    # 1. The presence cookie: nothing asked while signed out, one refresh when signed in
    assert seen["signedOutLoad"] == {"calls": [], "initial": None}
    assert seen["signedIn"] == {"userId": user_id, "presence": ["authsvc_session=1"]}
    assert seen["cookies"] == [
        {"name": "__Host-authsvc_refresh", "httpOnly": True, "secure": True, "sameSite": "Strict",
         "path": "/"},
        {"name": "authsvc_session", "httpOnly": False, "secure": True, "sameSite": "Lax",
         "path": "/"}]
    # (and the restored session reads its profile once)
    assert seen["restoredLoad"] == {"calls": ["POST /v1/auth/refresh", "GET /v1/auth/userinfo"],
                                    "initial": user_id}
    # 2. fetch() refuses another origin before sending anything.
    assert seen["fetchElsewhere"] == "API_ORIGIN_NOT_LISTED"
    assert seen["requestsElsewhere"] == 0
    # 3. An authenticator app, with step-up for its removal.
    assert seen["enrolledUri"] is True
    assert seen["recoveryCodes"] == 10
    assert seen["factorsAfterConfirm"] == {"totp": True, "recoveryCodesLeft": 10, "passkeys": 0}
    assert seen["removeWithoutStepUp"] == {"reason": "INSUFFICIENT_USER_AUTHENTICATION",
                                           "status": 401}
    assert seen["stepUp"] == {"reason": "MFA_REQUIRED", "factors": "totp recovery_code",
                              "userId": user_id}
    assert seen["regenerated"] == {"ok": 10}
    assert seen["removeAfterStepUp"] == {"ok": None}
    assert seen["factorsAfterRemove"] == {"totp": False, "recoveryCodesLeft": 0, "passkeys": 0}
    # 4. Signed out everywhere: the other browser's token is refused, no cookie is left,
    # and a reload asks nothing.
    assert seen["phoneUserId"] == user_id
    assert seen["afterEverywhere"] == {"state": "signed out", "presence": False, "cookies": []}
    assert seen["signedOutReload"] == {"calls": [], "initial": None}
    reply = call(browser_stack.gateway.removeprefix("http://"), "POST", "/v1/auth/validate", {},
                 bearer(seen["phoneToken"]))
    assert (reply.status, reply.reason()) == (401, "TOKEN_REVOKED")
    events = browser_stack.events()
    assert events.get("factor.totp_enabled") == 1
    assert events.get("factor.recovery_codes_regenerated") == 1
    assert events.get("factor.totp_removed") == 1
    assert events.get("signin.mfa_required") == 1
    # 5. An unlisted origin: told so, three times; the gateway logs it once.
    expected = (f"ORIGIN_NOT_ALLOWED: The gateway does not allow pages of "
                f"{browser_stack.other_origin}: list it in the gateway's --cors-origins.")
    assert seen["strangerSignIn"] == [expected] * 3
    assert browser_stack.gateway_process is not None
    refused = [line for line in browser_stack.gateway_process.lines if "origin not allowed" in line]
    assert len(refused) == 1, refused
    assert f"origin={browser_stack.other_origin}" in refused[0]
    assert browser_stack.events().get("signin.success") == 3  # laptop, its step-up, phone
