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

import pytest

from .test_gateway import _create_database, _drop_database, _require_go, _with_database

pytestmark = pytest.mark.go
ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["./verify/", "./internal/..."]


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
