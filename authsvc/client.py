"""Documented import path: ``from authsvc.client import SessionCredentials``.

Call credentials that sign in once and refresh; see ``authsvc.guard.credentials``.
"""

from __future__ import annotations

from .guard.credentials import SessionCredentials, SessionEnded, session_ended

__all__ = ["SessionCredentials", "SessionEnded", "session_ended"]
