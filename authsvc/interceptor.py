"""Documented import path: ``from authsvc.interceptor import AsyncAuthInterceptor``.

The interceptor lives in ``authsvc.guard.interceptor``; see its docstring.
"""

from __future__ import annotations

from .guard.interceptor import (
    DEFAULT_PUBLIC,
    AsyncAuthInterceptor,
    AuthInterceptor,
    claims_var,
    current_claims,
    methods_of,
)

__all__ = ["DEFAULT_PUBLIC", "AsyncAuthInterceptor", "AuthInterceptor", "claims_var",
           "current_claims", "methods_of"]
