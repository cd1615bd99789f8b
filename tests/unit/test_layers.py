"""The package's layers only point down, and each imports only what its audience has.

runtime → transport → domain → store → core, with guard → core beside them;
``errors``, ``clock`` and ``config`` are shared by all, and ``tracing`` (span helpers
that import OpenTelemetry only once tracing is on); ``v1`` is generated.
Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "authsvc"
SHARED = {"errors", "clock", "config", "tracing", "v1"}
ALLOWED = {
    # errors takes its reason strings from the generated ErrorReason enum
    # (authsvc/v1/error_reason_pb2: protobuf only, no gRPC)
    "errors": {"v1"}, "clock": set(), "config": {"errors"}, "tracing": set(),
    "core": {"errors", "clock"},
    "guard": {"core", "errors", "clock", "tracing", "v1"},
    "store": {"core", "errors", "clock"},
    "domain": {"store", "core"} | SHARED - {"v1"},
    "transport": {"domain", "guard", "core"} | SHARED,
    "runtime": {"transport", "domain", "store", "guard", "core"} | SHARED,
    # the documented import paths are short re-exports of the guard
    "interceptor": {"guard"}, "verifiers": {"guard"}, "client": {"guard"},
    "__main__": {"runtime"}, "__init__": set(),
}
FORBIDDEN_LIBRARIES = {
    "core": {"grpc", "grpc_status", "google", "asyncpg", "argon2", "pgserver",
             "prometheus_client"},
    "guard": {"asyncpg", "argon2", "pgserver", "prometheus_client"},
    "domain": {"grpc", "grpc_status", "grpc_health", "prometheus_client"},
    "store": {"grpc", "argon2", "prometheus_client"},
}


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imports(path: Path, source: str | None = None) -> list[tuple[str | None, str | None, int]]:
    """(authsvc layer imported or None, top-level library or None, line) per import."""
    module_parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    found: list[tuple[str | None, str | None, int]] = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "authsvc":
                    found.append((parts[1] if len(parts) > 1 else "__init__", None, node.lineno))
                else:
                    found.append((None, parts[0], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                parts = (node.module or "").split(".")
                if parts[0] != "authsvc":
                    found.append((None, parts[0], node.lineno))
                    continue
                target = parts[1:]
            else:
                base = module_parts[:len(module_parts) - node.level]
                target = base + (node.module.split(".") if node.module else [])
            if not target:  # "from . import x" at the package root
                target = [node.names[0].name]
            found.append((target[0], None, node.lineno))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "v1" not in p.relative_to(PACKAGE).parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_import_points_down(path):
    """A module imports its own layer, the layers below it and the shared modules only."""
    layer = _layer(path)
    allowed = ALLOWED[layer] | {layer}
    upward = [f"line {line}: {target}" for target, _, line in _imports(path)
              if target is not None and target not in allowed]

    assert upward == [], f"{layer} may import only {sorted(allowed)}"


@pytest.mark.parametrize("path", [p for p in MODULES if _layer(p) in FORBIDDEN_LIBRARIES],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_layer_imports_a_library_its_audience_lacks(path):
    """core is pure, the guard has no server dependency, domain and store know no gRPC."""
    forbidden = FORBIDDEN_LIBRARIES[_layer(path)]
    found = [f"line {line}: {library}" for _, library, line in _imports(path)
             if library in forbidden]

    assert found == []


def test_the_checker_sees_upward_and_library_imports():
    """The walk itself works: relative, absolute and in-function imports are all found."""
    source = ("from ..store import sessions\n"
              "import authsvc.runtime.app\n"
              "def f():\n    import asyncpg\n    from . import tokens\n")

    found = _imports(PACKAGE / "core" / "fake.py", source)

    assert sorted(found, key=lambda item: item[2]) == [
        ("store", None, 1), ("runtime", None, 2), (None, "asyncpg", 4), ("core", None, 5)]
