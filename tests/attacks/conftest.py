"""Fixtures of the attack tier.

- ``kit`` (module): a running authsvc with alice and bob signed in and an
  attacker's own key; one per module, shared by that module's cases.
- ``settings``: overrides tests/conftest.py's for every test in this directory
  that starts the usual ``app``/``server``/``stub``: the same settings without
  throttling, so attacks meet the real checks instead of the tarpit (which has
  its own tests). This is what test_attacks.py's module-wide override gave each
  of these tests when they shared that one module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from authsvc.config import Settings
from authsvc.v1 import auth_pb2

from ..helpers import PASSWORD
from .attack_helpers import BackgroundService, without_throttling
from .kit import Kit


@pytest.fixture(scope="module")
def kit(pg_admin_url: str, template_name: str) -> Iterator[Kit]:
    """A running authsvc (throttling off) with alice and bob signed in, and an attacker's
    own key; started once per module."""
    with BackgroundService(pg_admin_url, template_name) as service:
        accounts = service.app.accounts
        service.run(accounts.add("email", "alice@example.com", PASSWORD))
        service.run(accounts.add("email", "bob@example.com", PASSWORD))
        alice = service.stub.SignIn(auth_pb2.SignInRequest(email="alice@example.com",
                                                           password=PASSWORD))
        bob = service.stub.SignIn(auth_pb2.SignInRequest(email="bob@example.com",
                                                         password=PASSWORD))
        yield Kit(service, alice, bob, ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The suite's settings without throttling; indirect parametrisation picks the
    signing algorithm (ES256 unless a test asks for another)."""
    return dataclasses.replace(without_throttling(settings),
                               signing_alg=getattr(request, "param", "ES256"))
