"""The system tier: authsvc as child processes, failures of its database and of its
replicas, installs, and the Go gateway.

Every test collected from this directory is marked ``system``, so a quick run can
leave the tier out (``pytest -m "not system"``) and CI can run it apart
(``pytest -m system``). Tests that need Go are marked ``go`` in their module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/system ``system`` (the hook sees the whole session's
    items, so it picks this directory's by path)."""
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.system)
