"""The login page of examples/js-login-page, as a user of the JS client builds it: its
files copied into an empty project, the client installed there from the tarball
``npm pack`` makes, esbuild (the version the example pins) from the npm registry, and
``npm run build`` bundling both into one module. The page is served on its own origin,
talks to the real gateway in cookie mode in front of a real authsvc, and is used in
Debian's Chromium (clients/js/browser-test/login-page.mjs): a wrong password, the right
one, a reload, sign out. The login page guide shows these files, included from here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.docs.blocks import blocks
from tests.helpers import PASSWORD
from tests.system.test_artefacts import _npm, tarball  # noqa: F401 (a fixture)
from tests.system.test_browser import (  # noqa: F401 (fixtures)
    CLIENT,
    DRIVE_TIMEOUT,
    BrowserStack,
    browser_tools,
    serving_pages,
)
from tests.system.test_gateway import gateway_binary  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.system, pytest.mark.go, pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "js-login-page"
FILES = ("package.json", "build.mjs", "index.html", "main.js")
GUIDE = ROOT / "docs" / "guides" / "login-page.md"
# Where the bare project looks: the PATH of the system's node and npm, nothing of the
# checkout or of this venv.
BARE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}


def test_the_login_page_guide_shows_the_example_files_whole() -> None:
    """The guide includes the example's files whole (``--8<--`` lines), so the page shows
    what the test below runs, and each included block reads as the file."""
    included = re.findall(r'^--8<-- "examples/js-login-page/([^"]+)"$', GUIDE.read_text(), re.M)
    shown = [b.text for b in blocks(GUIDE)]

    assert sorted(included) == sorted(FILES)
    for name in FILES:
        assert (EXAMPLE / name).read_text() in shown, name


@pytest.fixture(scope="module")
def project(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """An empty project with the example's files, the client installed from the tarball
    (not linked to the checkout) and esbuild from the registry."""
    app = tmp_path_factory.mktemp("login-page") / "app"
    app.mkdir()
    for name in FILES:
        shutil.copy2(EXAMPLE / name, app / name)
    installed = subprocess.run([_npm(), "install", "--no-audit", "--no-fund", str(tarball)],
                               cwd=app, capture_output=True, text=True, timeout=600,
                               env=BARE_ENV)
    assert installed.returncode == 0, installed.stderr
    return app


@pytest.fixture(scope="module")
def page_stack(project: Path, pg_admin_url: str, template_name: str,
               gateway_binary: Path) -> Iterator[BrowserStack]:  # noqa: F811
    """authsvc and the gateway, the project served on a listed origin and bundled with
    ``npm run build`` for that gateway."""
    with serving_pages(project, pg_admin_url, template_name, gateway_binary) as stack:
        built = subprocess.run([_npm(), "run", "build"], cwd=project, capture_output=True,
                               text=True, timeout=300,
                               env={**BARE_ENV, "GATEWAY_URL": stack.gateway})
        assert built.returncode == 0, built.stdout + built.stderr
        assert built.stdout.strip().endswith(f"dist/main.js: the page signs in at {stack.gateway}")
        yield stack


def test_the_project_holds_the_packed_client_and_the_pinned_esbuild(project: Path) -> None:
    """The client in node_modules is the tarball's files, not a link to clients/js; esbuild
    is the version the example pins; the manifest names the tarball."""
    client = project / "node_modules" / "@authsvc" / "client"
    manifest = json.loads((project / "package.json").read_text())
    pinned = json.loads((EXAMPLE / "package.json").read_text())["devDependencies"]["esbuild"]
    esbuild = json.loads((project / "node_modules/esbuild/package.json").read_text())

    assert not client.is_symlink() and (client / "dist" / "index.js").is_file()
    assert manifest["dependencies"]["@authsvc/client"].endswith(".tgz")
    assert esbuild["version"] == pinned == manifest["devDependencies"]["esbuild"]


def _drive(node: str, chromium: str, stack: BrowserStack, email: str) -> dict[str, Any]:
    config = {"chromium": chromium, "pageUrl": stack.demo_origin, "gateway": stack.gateway,
              "email": email, "password": PASSWORD, "wrongPassword": PASSWORD + "!"}
    driver = CLIENT / "browser-test" / "login-page.mjs"
    result = subprocess.run([node, str(driver), json.dumps(config)], cwd=CLIENT,
                            capture_output=True, text=True, timeout=DRIVE_TIMEOUT)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_the_bundled_page_signs_in_shows_who_keeps_the_session_and_signs_out(
        browser_tools: tuple[str, str], page_stack: BrowserStack,  # noqa: F811
        project: Path) -> None:
    """In Chromium, the bundle alone (one script, no import map): signed out with no call;
    a wrong password told as such; signed in as the user's email from the profile; a
    reload signed in again through the refresh cookie; signed out, and a reload asks
    nothing."""
    node, chromium = browser_tools
    email, _ = page_stack.add_user()

    seen = _drive(node, chromium, page_stack, email)

    assert seen["pageErrors"] == [] and seen["elsewhere"] == []
    # The refused password is a 401 the browser logs; nothing else is logged.
    assert seen["consoleErrors"] == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"]
    signed_out = {"status": "Signed out", "form": True, "signOut": False, "error": ""}
    signed_in = {"status": f"Signed in as {email}", "form": False, "signOut": True, "error": ""}
    # 1. A signed-out load asks nothing.
    assert seen["signedOutLoad"] == {**signed_out, "calls": []}
    # 2. A wrong password.
    assert seen["wrongPassword"] == {**signed_out, "error": "Wrong email or password.",
                                     "calls": ["POST /v1/auth/signin"]}
    # 3. The right one: the page shows the email of the session's profile, the form is
    # emptied, and the refresh token is in a cookie no script reads.
    assert seen["signedIn"] == {**signed_in, "passwordField": "",
                                "calls": ["POST /v1/auth/signin", "GET /v1/auth/userinfo"]}
    assert seen["cookies"] == [{"name": "__Host-authsvc_refresh", "httpOnly": True},
                               {"name": "authsvc_session", "httpOnly": False}]
    assert seen["scriptSeesRefreshToken"] is False
    # 4. A reload: the session comes back from the refresh cookie.
    assert seen["reloaded"] == {**signed_in,
                                "calls": ["POST /v1/auth/refresh", "GET /v1/auth/userinfo"]}
    # 5. Signed out: the refresh token is revoked and both cookies are gone.
    assert seen["signedOut"] == {**signed_out, "calls": ["POST /v1/auth/revoke"]}
    assert seen["cookiesAfterSignOut"] == []
    # 6. A reload after signing out asks nothing.
    assert seen["reloadedSignedOut"] == {**signed_out, "calls": []}
    events = page_stack.events()
    assert (events.get("signin.failure"), events.get("signin.success"),
            events.get("refresh.success")) == (1, 1, 1)
    # The bundle is the client and the page in one file: nothing else is loaded.
    assert seen["pageFiles"] == ["/index.html", "/dist/main.js"]
