"""Sign-in with another provider at the HTTP edge, through the real gateway in front
of real authsvc and an identity provider on a real port: /start sets the flow's
HttpOnly, SameSite=Lax binding cookie and redirects to the provider; /callback
needs that cookie, and ends in cookie mode (refresh cookie, 302 to the allowed
redirect_to) or in SignIn's JSON token response."""

from __future__ import annotations

import asyncio
import base64
import secrets
import urllib.parse
import uuid
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest

from ..providers.config import callback, oidc_section, write_providers
from ..providers.http import query_of
from ..providers.rogue import RogueProvider, running_rogue_provider
from ..servers import free_port
from .test_gateway import (  # noqa: F401 (fixtures)
    VENV_BIN,
    Process,
    Reply,
    _create_database,
    _drop_database,
    _with_database,
    call,
    gateway_binary,
)

pytestmark = [pytest.mark.system, pytest.mark.go]

APP = "https://app.example"


class Edge:
    def __init__(self, idp: RogueProvider, cookie_port: int, body_port: int) -> None:
        self.idp = idp
        self.cookie_mode = f"127.0.0.1:{cookie_port}"
        self.body_mode = f"127.0.0.1:{body_port}"


@pytest.fixture(scope="module")
def edge(pg_admin_url: str, template_name: str, gateway_binary: Path,  # noqa: F811
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    """authsvc with providers ``idp`` (for the cookie-mode gateway) and ``idp-body``
    (the same provider, for a gateway in body mode), and both gateways."""
    with running_rogue_provider() as idp:
        yield from _edge(idp, pg_admin_url, template_name, gateway_binary, tmp_path_factory)


def _edge(idp: RogueProvider, pg_admin_url: str, template_name: str, gateway: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    cookie_port, body_port = free_port(), free_port()
    path = write_providers(tmp_path_factory.mktemp("providers") / "providers.toml", *(
        oidc_section(name, idp, secret_env="EDGE_IDP_SECRET",
                     redirect_uris=[callback(name, f"http://127.0.0.1:{port}")])
        for name, port in (("idp", cookie_port), ("idp-body", body_port))))
    name = f"authsvc_fed_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_database(pg_admin_url, name, template_name))
    kek = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    authsvc = Process(
        [str(VENV_BIN / "authsvc"), "serve", "--listen", "127.0.0.1:0", "--workers", "1",
         "--database-url", _with_database(pg_admin_url, name)],
        env={"AUTHSVC_ARGON2_PROFILE": "test-only-cheapest",
             "AUTHSVC_KEY_ENCRYPTION_KEY": kek, "AUTHSVC_METRICS_LISTEN": "127.0.0.1:0",
             "AUTHSVC_SHUTDOWN_GRACE": "0.5", "AUTHSVC_PROVIDERS_FILE": str(path),
             "AUTHSVC_SIGNUP": "open", "AUTHSVC_REDIRECT_ORIGINS": APP,
             "EDGE_IDP_SECRET": idp.client_secret})
    upstream = authsvc.wait_for(r"listening on (127\.0\.0\.1:\d+)").group(1)
    gateways = [
        Process([str(gateway), "--listen", f"127.0.0.1:{cookie_port}", "--upstream",
                 upstream, "--refresh-cookie", "--insecure-dev-cookies", "--cors-origins",
                 APP]),
        Process([str(gateway), "--listen", f"127.0.0.1:{body_port}", "--upstream",
                 upstream])]
    for gateway in gateways:
        gateway.wait_for(r"listening on http://")
    yield Edge(idp, cookie_port, body_port)
    for process in (*gateways, authsvc):
        process.stop()
    asyncio.run(_drop_database(pg_admin_url, name))


def cookies_of(reply: Reply) -> dict[str, Any]:
    jar: SimpleCookie = SimpleCookie()
    for value in reply.headers.get_all("Set-Cookie") or []:
        jar.load(value)
    return {name: morsel for name, morsel in jar.items()}


def test_start_sets_an_httponly_lax_binding_cookie_and_redirects_to_the_provider(edge):
    reply = call(edge.cookie_mode, "GET", "/v1/auth/providers/idp/start")
    assert reply.status == 302, reply.body
    assert reply.header("Location").startswith(f"{edge.idp.issuer}/authorize?")
    (name, morsel), = cookies_of(reply).items()
    assert name.startswith("authsvc_fed_")
    assert morsel["httponly"] and morsel["samesite"] == "Lax"
    assert reply.header("Cache-Control") == "no-store"


def _visit(edge: Edge, address: str, provider: str, redirect_to: str = "",
           ) -> tuple[str, str]:
    """/start and the provider: the callback path and the Cookie header to send."""
    query = "?" + urllib.parse.urlencode({"redirect_to": redirect_to}) if redirect_to else ""
    reply = call(address, "GET", f"/v1/auth/providers/{provider}/start{query}")
    assert reply.status == 302, reply.body
    (name, morsel), = cookies_of(reply).items()
    params = query_of(edge.idp.authorize(reply.header("Location")))
    path = f"/v1/auth/providers/{provider}/callback?" + urllib.parse.urlencode(params)
    return path, f"{name}={morsel.value}"


def test_cookie_mode_sets_the_refresh_cookie_and_redirects_to_the_allowed_target(edge):
    path, cookie = _visit(edge, edge.cookie_mode, "idp", f"{APP}/home")
    reply = call(edge.cookie_mode, "GET", path, headers=[("Cookie", cookie)])
    assert reply.status == 302, reply.body
    assert reply.header("Location") == f"{APP}/home"
    set_cookies = cookies_of(reply)
    assert set_cookies["authsvc_refresh"].value and set_cookies["authsvc_refresh"]["httponly"]
    assert set_cookies[cookie.split("=")[0]]["max-age"] in ("0", "-1")  # the binding is gone


def test_body_mode_answers_the_sign_in_token_response(edge):
    path, cookie = _visit(edge, edge.body_mode, "idp-body")
    reply = call(edge.body_mode, "GET", path, headers=[("Cookie", cookie)])
    assert reply.status == 200, reply.body
    assert reply.json["token_type"] == "Bearer" and reply.json["refresh_token"]


def test_a_callback_without_the_binding_cookie_is_refused_before_authsvc(edge):
    """Login CSRF: the attacker's callback URL opened in another browser."""
    path, _cookie = _visit(edge, edge.cookie_mode, "idp")
    reply = call(edge.cookie_mode, "GET", path)
    assert (reply.status, reply.reason()) == (401, "FEDERATION_FLOW_INVALID")


def test_a_replayed_callback_is_refused(edge):
    path, cookie = _visit(edge, edge.body_mode, "idp-body")
    assert call(edge.body_mode, "GET", path, headers=[("Cookie", cookie)]).status == 200
    again = call(edge.body_mode, "GET", path, headers=[("Cookie", cookie)])
    assert (again.status, again.reason()) == (401, "FEDERATION_FLOW_INVALID")


def test_three_tabs_sign_in_at_once(edge):
    """Each flow has a cookie of its own: three starts, then three callbacks, all sign in."""
    visits = [_visit(edge, edge.body_mode, "idp-body") for _ in range(3)]
    cookie_header = "; ".join(cookie for _path, cookie in visits)
    for path, _cookie in visits:
        reply = call(edge.body_mode, "GET", path, headers=[("Cookie", cookie_header)])
        assert reply.status == 200, reply.body


def test_a_foreign_redirect_is_refused_at_start(edge):
    reply = call(edge.cookie_mode, "GET", "/v1/auth/providers/idp/start?redirect_to="
                 + urllib.parse.quote("https://evil.example/"))
    assert reply.status == 400 and "Set-Cookie" not in reply.headers


def test_an_unknown_provider_is_404(edge):
    reply = call(edge.cookie_mode, "GET", "/v1/auth/providers/nope/start")
    assert (reply.status, reply.reason()) == (404, "PROVIDER_UNKNOWN")
