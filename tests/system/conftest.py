"""The system tier: authsvc as child processes, failures of its database and of its
replicas, installs, and the Go gateway.

Every test collected from this directory is marked ``system``, so a quick run can
leave the tier out (``pytest -m "not system"``) and CI can run it apart
(``pytest -m system``). Tests that need Go are marked ``go`` in their module.

Tests marked ``peers`` run real Keycloak and Supabase Auth to regenerate their
exports (minutes, a large download, Java 21+ and Go): they are deselected unless
``AUTHSVC_PEERS=1``, so a plain run neither pays for them nor reports them
skipped; with the flag, a missing tool fails them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/system ``system`` (the hook sees the whole session's
    items, so it picks this directory's by path); deselect ``peers`` tests unless
    AUTHSVC_PEERS=1."""
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.system)
    if os.environ.get("AUTHSVC_PEERS") != "1":
        peers = [item for item in items if item.get_closest_marker("peers")]
        if peers:
            config.hook.pytest_deselected(items=peers)
            items[:] = [item for item in items if not item.get_closest_marker("peers")]
