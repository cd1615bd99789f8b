"""The package's layers only point down, and each imports only what its audience has.

runtime → transport → domain → store → core, with guard → core beside them;
``errors``, ``clock`` and ``config`` are shared by all, and ``tracing`` (span helpers
that import OpenTelemetry only once tracing is on); ``v1`` is generated.
Imports inside functions count too.

Inside the domain, no use case imports another. A *use case* is a module whose
classes the outside calls to do one thing authsvc offers: a servicer (SignIn,
Refresh, SignOut, SignUp and Verification, ChangePassword and PasswordReset,
SecondFactorSignIn, Factors, Passkeys, Accounts) or the worker (Delivery,
Retention). Everything else in the domain is a *service* the use cases are handed
(Throttle, Passwords, the session opener, Codes, Messages, the Issuer, ...) or a
*bundle* that only names use cases for the transport (SelfService). A use case
that needs another's behaviour declares a small ``Protocol`` where it is used
(SignUp's ``SignsIn``, SecondFactorSignIn's ``CodeChecks``, Passkeys'
``RecoveryCodes``) and ``runtime.app`` hands the other in, or the shared piece
moves into a service module (``throttling.sends``, ``factors.attempts``,
``sessions.revocation``). Why: a use case that imports another drags in its
collaborators and its changes, and the imports grow into a chain (it once ran
self_service → password_change → signup → signin → mfa → passkeys) where a change
at the bottom ripples through every floor and no flow can be built, or faked in a
unit test, on its own. Every domain module is classified below, so a new one
states which it is.
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
    "runtime": {"transport", "domain", "store", "guard", "core", "importing"} | SHARED,
    # adapters from other systems' exports to the import format: they read files
    # and write lines; the domain checks those lines
    "importing": {"domain", "errors"},
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


# The domain's modules by role (paths under authsvc/domain); see the module docstring.
USE_CASES = {
    "sessions/signin.py",  # SignIn
    "sessions/refresh.py",  # Refresh
    "sessions/sign_out.py",  # SignOut
    "accounts/admin.py",  # Accounts (UserAdmin and the CLI)
    "accounts/user_import.py",  # UserImport (ImportUsers and `authsvc users import`)
    "accounts/signup.py",  # SignUp, Verification
    "accounts/password_change.py",  # ChangePassword, PasswordReset
    "factors/otp.py",  # Factors
    "factors/passkeys.py",  # Passkeys
    "factors/mfa.py",  # SecondFactorSignIn
    "delivery/outbox.py",  # Delivery (the worker's outbox loops)
    "retention.py",  # Retention (the worker's pruning)
    "federation/flows.py",  # Federation
}
BUNDLES = {"accounts/self_service.py"}
SERVICES = {
    "caller.py", "keycrypto.py",
    "sessions/opener.py", "sessions/refresh_tokens.py", "sessions/revocation.py",
    "sessions/devices.py", "sessions/storage.py",
    "tokens/issuer.py", "tokens/validator.py", "tokens/keystore.py", "tokens/profiles.py",
    "accounts/codes.py", "accounts/identifiers.py", "accounts/blocklist.py",
    "accounts/passwords.py", "accounts/foreign_hashes.py", "accounts/imported.py",
    "factors/attempts.py", "factors/totp.py", "factors/ceremonies.py", "federation/state.py",
    "throttling/throttle.py", "throttling/sends.py",
    "delivery/messages.py",
    "federation/providers.py", "federation/client.py", "federation/http.py",
}
DOMAIN = PACKAGE / "domain"
DOMAIN_MODULES = sorted(str(p.relative_to(DOMAIN)) for p in DOMAIN.rglob("*.py")
                        if p.name != "__init__.py")


def _modules_imported(path: Path, source: str | None = None) -> set[str]:
    """The authsvc modules ``path`` imports, as paths under authsvc (``domain/x.py``);
    ``from package import module`` names the module, not the package."""
    module_parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            targets = [alias.name.split(".")[1:] for alias in node.names
                       if alias.name.split(".")[0] == "authsvc"]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                parts = (node.module or "").split(".")
                if parts[0] != "authsvc":
                    continue
                base = parts[1:]
            else:
                base = (module_parts[:len(module_parts) - node.level]
                        + (node.module.split(".") if node.module else []))
            targets = [[*base, alias.name] for alias in node.names
                       if PACKAGE.joinpath(*base, alias.name + ".py").exists()] or [base]
        else:
            continue
        found |= {"/".join(target) + ".py" for target in targets if target}
    return found


def test_every_domain_module_is_a_use_case_a_service_or_a_bundle():
    """Each domain module is classified exactly once, so the use-case rule covers it."""
    classified = sorted(USE_CASES | SERVICES | BUNDLES)

    assert len(USE_CASES) + len(SERVICES) + len(BUNDLES) == len(classified)
    assert classified == DOMAIN_MODULES


@pytest.mark.parametrize("module", sorted(set(DOMAIN_MODULES) - BUNDLES))
def test_no_use_case_imports_another(module):
    """Only a bundle imports use cases: a use case needing another's behaviour is handed
    it through a Protocol, and no service imports a use case behind their back."""
    imported = {m.removeprefix("domain/") for m in _modules_imported(DOMAIN / module)
                if m.startswith("domain/")}

    assert sorted(imported & USE_CASES - {module}) == []


def test_the_checker_sees_imports_of_use_cases():
    """Relative, absolute, package-level and in-function imports of a module are found."""
    source = ("from ..sessions.signin import SignIn\n"
              "from ..factors import mfa\n"
              "from . import codes\n"
              "import authsvc.domain.sessions.refresh\n"
              "def f():\n    from ...store import users\n")

    found = _modules_imported(DOMAIN / "accounts" / "fake.py", source)

    assert found == {"domain/sessions/signin.py", "domain/factors/mfa.py",
                     "domain/accounts/codes.py", "domain/sessions/refresh.py",
                     "store/users.py"}
