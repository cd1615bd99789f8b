"""The Kubernetes manifests, checked offline by their Go test (deploy/kubernetes):
rendered with kustomize's library at the version pinned in its go.mod, decoded
strictly into the k8s.io/api types, probes, security context, selectors and env
names (against docs/configuration.md, generated from the settings, and
gateway/main.go) asserted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .test_gateway import _require_go

pytestmark = pytest.mark.go
MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def test_manifests_render_decode_strictly_and_match_the_settings() -> None:
    """`go test` in deploy/kubernetes passes (it fetches its pinned modules on first run)."""
    go = _require_go()

    result = subprocess.run([go, "test", "-count=1", "./..."], cwd=MANIFESTS,
                            capture_output=True, text=True, timeout=900)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok  \tgithub.com/authsvc/authsvc/deploy/kubernetes" in result.stdout
