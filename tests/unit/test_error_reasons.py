"""ErrorInfo reasons are declared once, as ``authsvc.v1.ErrorReason``: every reason an
error class sends is one of its values, and every value is sent by someone (an
error class here, or the Go gateway). The table of docs/reference/errors.md is
checked against them in test_docs_pages.py."""

from __future__ import annotations

import re
from pathlib import Path

import authsvc.errors
from authsvc.errors import ClientError
from authsvc.v1.error_reason_pb2 import ErrorReason

ROOT = Path(__file__).resolve().parents[2]
UNSPECIFIED = "ERROR_REASON_UNSPECIFIED"
# A reason the gateway sends: the generated Go constant, or a literal ErrorInfo reason.
GO_REASON = re.compile(r'\bErrorReason_([A-Z][A-Z_]*)\b|\bReason:\s*"([A-Z][A-Z_]*)"')


def _error_classes() -> list[type[ClientError]]:
    found: list[type[ClientError]] = []
    todo: list[type[ClientError]] = [ClientError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _declared() -> set[str]:
    return {value.name for value in ErrorReason.DESCRIPTOR.values} - {UNSPECIFIED}


def _sent_by_the_gateway() -> set[str]:
    sources = [p for p in (ROOT / "gateway").rglob("*.go")
               if not p.name.endswith("_test.go") and "gen" not in p.relative_to(ROOT).parts]
    return {a or b for p in sources for a, b in GO_REASON.findall(p.read_text())} - {UNSPECIFIED}


def test_every_error_class_sends_a_declared_reason() -> None:
    """Each client error's reason is the name of an ErrorReason value, never the zero one."""
    undeclared = {cls.__name__: cls.reason for cls in _error_classes()
                  if cls.reason not in _declared()}

    assert undeclared == {}


def test_error_classes_take_their_reason_from_the_enum() -> None:
    """errors.py writes no reason as a string literal: each comes from ErrorReason."""
    source = Path(authsvc.errors.__file__).read_text()

    assert re.findall(r'reason\s*=\s*["\']', source) == []


def test_every_declared_reason_is_sent_by_someone() -> None:
    """Each ErrorReason value is sent by an error class of authsvc or by the gateway."""
    python = {cls.reason for cls in _error_classes()}
    gateway = _sent_by_the_gateway()

    assert _declared() - python - gateway == set()
    assert gateway - _declared() == set(), "the gateway sends a reason ErrorReason lacks"


def test_the_wire_strings_are_the_ones_clients_switch_on() -> None:
    """The reasons documented for clients keep their exact strings (the wire contract)."""
    documented = {"INVALID_CREDENTIALS", "TOKEN_INVALID", "TOKEN_EXPIRED", "TOKEN_REVOKED",
                  "REFRESH_TOKEN_INVALID", "REFRESH_TOKEN_REUSED", "RATE_LIMITED",
                  "MFA_REQUIRED", "INSUFFICIENT_SCOPE", "INSUFFICIENT_USER_AUTHENTICATION",
                  "TOKEN_MISSING", "ORIGIN_NOT_ALLOWED"}

    assert documented <= _declared()
    assert authsvc.errors.InvalidCredentials.reason == "INVALID_CREDENTIALS"
    assert authsvc.errors.PermissionDenied.reason == "INSUFFICIENT_SCOPE"

