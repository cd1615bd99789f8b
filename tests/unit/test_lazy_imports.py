"""What an idle process of ``authsvc serve`` loads: the libraries of features it
may never use load when first used, and the supervisor loads none of the
service's. Each check imports in a fresh interpreter, as the process does."""

from __future__ import annotations

import subprocess
import sys

# What a worker imports before its first call (runtime.child, then the service).
WORKER = "import authsvc.runtime.child, authsvc.runtime.worker, authsvc.runtime.app"
# What the supervisor of `authsvc serve --workers N` imports.
SUPERVISOR = ("import authsvc.__main__, authsvc.runtime.cli, authsvc.runtime.runner, "
              "authsvc.runtime.supervisor")


def _loaded(imports: str, packages: tuple[str, ...]) -> list[str]:
    """Which of ``packages`` (top-level names) are in sys.modules after ``imports``."""
    code = (f"import sys\n{imports}\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(packages)!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)
    return eval(result.stdout)  # noqa: S307  # our own print of a sorted list of names


def test_worker_leaves_unused_features_unloaded() -> None:
    """A starting worker loads neither passkeys' (webauthn, cbor2), SMTP's
    (aiosmtplib), the password strength check's (zxcvbn), tracing's
    (opentelemetry) nor the embedded database's (pgserver, psutil) libraries.
    (bcrypt is loaded anyway: cryptography's serialization imports it.)"""
    lazy = ("webauthn", "cbor2", "aiosmtplib", "zxcvbn", "opentelemetry", "pgserver",
            "psutil")

    assert _loaded(WORKER, lazy) == []


def test_supervisor_loads_none_of_the_service() -> None:
    """The supervisor only supervises: no gRPC, database driver, crypto or hashing."""
    service = ("grpc", "asyncpg", "cryptography", "jwt", "argon2", "bcrypt", "webauthn")

    assert _loaded(SUPERVISOR, service) == []
