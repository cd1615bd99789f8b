"""Documented import path: ``from authsvc.verifiers import LocalVerifier``.

- ``LocalVerifier`` (``authsvc.guard.local``) checks tokens in-process with
  the same rules as authsvc's Validate and follows ``WatchRevocations``.
- ``RemoteVerifier`` (``authsvc.guard.remote``) asks authsvc's Validate and
  caches positive answers briefly.
"""

from __future__ import annotations

from .guard.local import LocalVerifier
from .guard.remote import RemoteVerifier
from .guard.verifier import Verifier

__all__ = ["LocalVerifier", "RemoteVerifier", "Verifier"]
