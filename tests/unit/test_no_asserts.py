"""Production code states its invariants as types or explicit errors, never ``assert``:
``python -O`` strips asserts, and a narrowing that only an assert holds up is a
loose type waiting to be wrong."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "authsvc"


def test_no_module_of_the_package_asserts():
    """No ``assert`` statement anywhere in authsvc (generated stubs aside)."""
    found = [f"{path.relative_to(PACKAGE)}:{node.lineno}"
             for path in sorted(PACKAGE.rglob("*.py"))
             if "v1" not in path.relative_to(PACKAGE).parts
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Assert)]

    assert found == []
