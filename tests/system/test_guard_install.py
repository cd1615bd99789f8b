"""``pip install authsvc`` (no extras) is enough for a protected service, and
importing the guard drags nothing of the server into it; the server, started
there, says what is missing and how to install it."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
SERVER_LIBRARIES = ["asyncpg", "argon2", "pgserver", "prometheus_client"]
# grpcio itself imports these two when they are installed, so only their absence
# from the base install is asserted.
SERVER_MODULES = [*SERVER_LIBRARIES, "grpc_health", "grpc_reflection"]

PROBE = """
import json, sys
import authsvc.guard, authsvc.interceptor, authsvc.verifiers, authsvc.client
from authsvc.guard import AsyncAuthInterceptor, LocalVerifier, RemoteVerifier
AsyncAuthInterceptor(RemoteVerifier("127.0.0.1:1"))
registered = []
if "prometheus_client" in sys.modules:
    registered = list(sys.modules["prometheus_client"].REGISTRY._names_to_collectors)
print(json.dumps({"loaded": sorted(sys.modules), "registered": registered}))
"""


@pytest.fixture(scope="module")
def base_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding only the base dependencies."""
    home = tmp_path_factory.mktemp("guard-venv")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-c", ROOT / "constraints.txt", *BASE], check=True, timeout=600)
    return python


def test_the_base_install_has_none_of_the_server_dependencies(base_python):
    """asyncpg, argon2-cffi, pgserver and prometheus-client are not installed at all."""
    found = subprocess.run(
        [base_python, "-c", "import importlib.util as u, sys; "
         f"print([m for m in {SERVER_MODULES!r} if u.find_spec(m)])"],
        capture_output=True, text=True, check=True).stdout.strip()

    assert found == "[]"


def test_importing_the_guard_loads_no_server_module_and_registers_no_metric(base_python):
    """The documented imports work in the base install and load only the guard's side."""
    result = subprocess.run([base_python, "-c", PROBE], capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)

    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout)
    assert [m for m in probe["loaded"] if m.partition(".")[0] in SERVER_MODULES] == []
    assert [m for m in probe["loaded"] if m.startswith(("authsvc.runtime", "authsvc.domain",
                                                        "authsvc.store",
                                                        "authsvc.transport"))] == []
    assert probe["registered"] == []


def test_the_same_imports_in_the_full_install_load_no_server_module():
    """Even where the server's libraries are installed, the guard does not import them."""
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            check=True, timeout=120)

    probe = json.loads(result.stdout)
    assert [m for m in probe["loaded"] if m.partition(".")[0] in SERVER_LIBRARIES] == []
    assert probe["registered"] == []


def test_the_server_in_the_base_install_names_the_missing_modules_and_the_extra(
        base_python, tmp_path):
    """`authsvc serve` without the server extra exits 2 with one line naming the
    missing modules and `pip install 'authsvc[server]'`, having started nothing."""
    result = subprocess.run([base_python, "-m", "authsvc", "serve", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})

    assert (result.returncode, result.stderr) == (
        2, "authsvc: error: the server extra is not installed (missing modules: aiosmtplib, "
           "argon2, asyncpg, bcrypt, grpc_health, grpc_reflection, opentelemetry, pgserver, "
           "prometheus_client, psutil, webauthn, zxcvbn): pip install 'authsvc[server]'\n")
    assert list(tmp_path.iterdir()) == []
