"""What a service protected by authsvc imports: interceptors, verifiers, credentials.

Depends on grpcio, protobuf, grpcio-status and pyjwt only (``pip install
authsvc``); nothing of the server (asyncpg, argon2, pgserver, prometheus)
is imported, and no metric is registered in the importing process.
"""

from __future__ import annotations

from .credentials import SessionCredentials, SessionEnded, session_ended
from .interceptor import (
    DEFAULT_PUBLIC,
    AsyncAuthInterceptor,
    AuthInterceptor,
    claims_var,
    current_claims,
    methods_of,
)
from .local import LocalVerifier
from .remote import RemoteVerifier
from .verifier import Verifier

__all__ = [
    "DEFAULT_PUBLIC",
    "AsyncAuthInterceptor",
    "AuthInterceptor",
    "LocalVerifier",
    "RemoteVerifier",
    "SessionCredentials",
    "SessionEnded",
    "Verifier",
    "claims_var",
    "current_claims",
    "methods_of",
    "session_ended",
]
