"""The Go verifier (gateway/verify), the gateway's edge answers (discovery,
introspection, userinfo) and its Envoy ext_authz service, against real authsvc.

Their Go integration tests (build tag ``authsvc``) start ``authsvc serve``
themselves: this module hands them a fresh migrated database, the authsvc
command and a key-encryption key, runs ``go test -tags authsvc`` and reports
what they logged (the revocation latency among it).
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..helpers import PASSWORD, eventually_blocking
from .test_gateway import (
    Process,
    _create_database,
    _drop_database,
    _require_go,
    _with_database,
    bearer,
    call,
    gateway_binary,
    stack_factory,
)

pytestmark = pytest.mark.go
ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["./verify/", "./internal/..."]
__all__ = ["gateway_binary", "stack_factory"]  # fixtures shared with test_gateway


@pytest.fixture
def go_env(pg_admin_url: str, template_name: str) -> Iterator[dict[str, str]]:
    """What the Go integration tests need to start authsvc on a database of their own."""
    name = f"authsvc_go_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_database(pg_admin_url, name, template_name))
    kek = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    yield {"AUTHSVC_TEST_BIN": str(Path(sys.executable).parent / "authsvc"),
           "AUTHSVC_TEST_DATABASE_URL": _with_database(pg_admin_url, name),
           "AUTHSVC_KEY_ENCRYPTION_KEY": kek}
    asyncio.run(_drop_database(pg_admin_url, name))


def test_go_integration_tests_pass_against_real_authsvc(go_env: dict[str, str]) -> None:
    """``go vet`` and ``go test -tags authsvc`` of the verifier and the gateway's
    discovery, introspection and ext_authz pass against real authsvc processes."""
    go = _require_go()
    env = {**os.environ, **go_env}

    vet = subprocess.run([go, "vet", "-tags", "authsvc", *PACKAGES], cwd=ROOT / "gateway",
                         capture_output=True, text=True, timeout=600, env=env)
    tests = subprocess.run([go, "test", "-count=1", "-p=1", "-v", "-tags", "authsvc", *PACKAGES],
                           cwd=ROOT / "gateway", capture_output=True, text=True, timeout=900,
                           env=env)

    print(tests.stdout[-20000:])
    assert vet.returncode == 0, vet.stdout + vet.stderr
    assert tests.returncode == 0, tests.stdout[-20000:] + tests.stderr[-5000:]


def _add_user(stack: Any, *scopes: str) -> str:
    """A user with ``scopes``, created through the CLI; returns its email."""
    email = f"svc-{uuid.uuid4().hex[:10]}@example.com"
    flags = [part for scope in scopes for part in ("--scope", scope)]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "authsvc"), "users", "add", "--email", email,
         "--password-stdin", "--database-url", stack.database_url, *flags],
        input=PASSWORD, text=True, capture_output=True, timeout=60,
        env={**os.environ, **stack.env})
    assert result.returncode == 0, result.stderr
    return email


def test_the_gateway_binary_verifies_at_the_edge_and_serves_discovery(
        stack_factory: Any, gateway_binary: Path, tmp_path: Path) -> None:
    """Started with a watch account, the gateway binary answers Validate itself (a revoked
    session's token gets 401 TOKEN_REVOKED with the challenge), serves the discovery
    documents of its https issuer and listens for ext_authz."""
    issuer = "https://auth.example.com"
    stack = stack_factory({"AUTHSVC_ISSUER": issuer})
    watcher = _add_user(stack, "authsvc.revocations")
    password = tmp_path / "password"
    password.write_text(PASSWORD + "\n")
    upstream = stack.authsvc.wait_for(r"listening on (127\.0\.0\.1:\d+)").group(1)
    gateway = Process([str(gateway_binary), "--listen", "127.0.0.1:0", "--upstream", upstream,
                       "--issuer", issuer, "--watch-email", watcher,
                       "--watch-password-file", str(password),
                       "--ext-authz-listen", "127.0.0.1:0"])
    try:
        address = gateway.wait_for(r"listening on http://(127\.0\.0\.1:\d+)").group(1)
        gateway.wait_for(r"ext_authz listening on 127\.0\.0\.1:\d+")
        token = stack.sign_in()

        discovery = call(address, "GET", "/.well-known/openid-configuration")
        valid = call(address, "POST", "/v1/auth/validate", {}, bearer(token["access_token"]))
        call(address, "POST", "/v1/auth/revoke", {"token": token["access_token"]})
        revoked = valid

        def refused() -> bool:
            nonlocal revoked
            revoked = call(address, "POST", "/v1/auth/validate", {},
                           bearer(token["access_token"]))
            return revoked.status != 200

        eventually_blocking(refused, 30, "the revoked token to be refused")
    finally:
        gateway.stop()

    assert discovery.status == 200
    assert discovery.json["issuer"] == issuer
    assert discovery.json["jwks_uri"] == issuer + "/.well-known/jwks.json"
    assert discovery.json["introspection_endpoint"] == issuer + "/v1/auth/introspect"
    assert valid.status == 200 and valid.json["session_id"] == token["session_id"]
    assert revoked.status == 401 and revoked.reason() == "TOKEN_REVOKED"
    assert revoked.header("WWW-Authenticate") == (
        'Bearer realm="authsvc", error="invalid_token", '
        'error_description="The access token\'s session was revoked"')
