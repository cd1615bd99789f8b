"""Pytest fixtures for the test identity providers (imported by tests/conftest.py).

- ``oidc_provider`` (session): the zitadel example OP; users ``VERIFIED`` and
  ``UNVERIFIED``; client ``authsvc`` whose redirect URIs are any 127.0.0.1 or
  localhost port and path.
- ``second_oidc_provider`` (session): another one (own issuer, own keys, same
  client id and secret): the other side of an ``iss`` mix-up.
- ``github_provider`` (function): the GitHub-shape OAuth 2.0 provider; users
  ``OCTO_VERIFIED`` and ``OCTO_UNVERIFIED``.
- ``rogue_provider`` (function): the bendable Python OIDC provider.
- ``silent_provider`` (function): accepts connections and never answers
  (a provider that hangs); its ``url`` is an issuer nobody serves.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..receivers import SilentServer
from .github import GitHubProvider, running_github_provider
from .rogue import RogueProvider, running_rogue_provider
from .zitadel import OIDCProvider, running_oidc_provider


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OIDCProvider]:
    """The zitadel example OP on a free port (built on first use)."""
    with running_oidc_provider() as provider:
        yield provider


@pytest.fixture(scope="session")
def second_oidc_provider() -> Iterator[OIDCProvider]:
    """A second zitadel example OP: another issuer with its own signing key."""
    with running_oidc_provider() as provider:
        yield provider


@pytest.fixture
def github_provider() -> Iterator[GitHubProvider]:
    """The GitHub-shape OAuth 2.0 (non-OIDC) provider on a free port."""
    with running_github_provider() as provider:
        yield provider


@pytest.fixture
def rogue_provider() -> Iterator[RogueProvider]:
    """The bendable OIDC provider on a free port (fresh per test)."""
    with running_rogue_provider() as provider:
        yield provider


@pytest.fixture
def silent_provider() -> Iterator[SilentServer]:
    """A provider that is down in the worst way: connects, then never answers."""
    server = SilentServer().start()
    server.url = f"http://127.0.0.1:{server.port}"
    yield server
    server.stop()
