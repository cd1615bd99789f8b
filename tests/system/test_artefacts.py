"""The three installable artefacts, built as CI builds them and installed into
empty projects from a path: the Python wheel and sdist (``python -m build``,
``twine check --strict``), the npm tarball of clients/js (``npm pack``), and
the Go module gateway/verify; and the one licence they share.

Builds happen in temporary directories: the Python build runs on a copy of the
tree's files (what git tracks or would track), so it writes nothing into the
checkout and proves the sdist carries everything the wheel needs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import venv
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import grpc
import pytest

from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, bearer, eventually_blocking, parse
from ..servers import free_port, server_env
from .test_gateway import Process, _require_go

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
CLIENT = ROOT / "clients/js"
PACKAGE_JSON = json.loads((CLIENT / "package.json").read_text())
MIGRATIONS = sorted(p.name for p in (ROOT / "authsvc/store/migrations").glob("*.sql"))
SERVER_MODULES = ["asyncpg", "argon2", "pgserver", "prometheus_client", "aiosmtplib"]
# A child that sees neither the checkout nor this venv: what an empty project has.
BARE_ENV = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _tree_files() -> list[str]:
    """The checkout's files as git sees them: tracked, or untracked and not ignored."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def _venv(home: Path) -> Path:
    venv.create(home, with_pip=True)
    return home / "bin" / "python"


def _pip_install(python: Path, *requirements: str) -> None:
    subprocess.run([python, "-m", "pip", "install", "--quiet", "-c", ROOT / "constraints.txt",
                    *requirements], check=True, timeout=900, env=BARE_ENV, cwd=python.parent)


# --- Python -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build`` (the sdist, then the wheel built from it) of a copy of the tree."""
    work = tmp_path_factory.mktemp("python-build")
    source = work / "src"
    for name in _tree_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    before = sorted(p.name for p in ROOT.iterdir())
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(source)],
                   check=True, timeout=600, capture_output=True)
    assert sorted(p.name for p in ROOT.iterdir()) == before  # nothing new in the checkout
    return work / "dist"


def test_the_build_makes_one_wheel_and_one_sdist_that_twine_passes_strictly(dist: Path):
    """The wheel and sdist carry the project's name and version, and ``twine check
    --strict`` passes both (metadata, licence expression, README rendering)."""
    names = sorted(p.name for p in dist.iterdir())
    check = subprocess.run([sys.executable, "-m", "twine", "check", "--strict",
                            *map(str, dist.iterdir())], capture_output=True, text=True, timeout=120)

    assert names == [f"authsvc-{VERSION}-py3-none-any.whl", f"authsvc-{VERSION}.tar.gz"]
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("PASSED") == 2


def test_the_wheel_and_sdist_hold_the_migrations_the_types_and_the_licence(dist: Path):
    """Both have every migration, py.typed and the stubs' .pyi files; the wheel declares
    Apache-2.0 with the repository's LICENSE and the ``authsvc`` command."""
    wheel = zipfile.ZipFile(dist / f"authsvc-{VERSION}-py3-none-any.whl")
    in_wheel = set(wheel.namelist())
    with tarfile.open(dist / f"authsvc-{VERSION}.tar.gz") as sdist:
        in_sdist = {name.partition("/")[2] for name in sdist.getnames()}
    info = f"authsvc-{VERSION}.dist-info"
    metadata = wheel.read(f"{info}/METADATA").decode()

    for files in (in_wheel, in_sdist):
        assert {f"authsvc/store/migrations/{m}" for m in MIGRATIONS} <= files
        assert {"authsvc/py.typed", "authsvc/v1/auth_pb2.pyi", "authsvc/v1/auth_pb2.py"} <= files
    assert {"LICENSE", "pyproject.toml", "README.md"} <= in_sdist
    assert wheel.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "authsvc = authsvc.__main__:main" in wheel.read(f"{info}/entry_points.txt").decode()
    assert not [n for n in in_wheel if n.startswith(("tests/", "gateway/", "clients/"))]


def test_the_base_wheel_is_the_guard_alone(dist: Path, tmp_path: Path):
    """The wheel installed without extras into a fresh venv imports the guard's modules
    from the venv (not the checkout), and none of the server's libraries is installed."""
    python = _venv(tmp_path / "venv")
    _pip_install(python, str(dist / f"authsvc-{VERSION}-py3-none-any.whl"))
    probe = ("import importlib.util as u, json, authsvc, authsvc.interceptor, "
             "authsvc.verifiers, authsvc.client\n"
             "from authsvc.guard import AsyncAuthInterceptor, RemoteVerifier\n"
             "AsyncAuthInterceptor(RemoteVerifier('127.0.0.1:1'))\n"
             f"print(json.dumps([authsvc.__file__, [m for m in {SERVER_MODULES!r} "
             "if u.find_spec(m)]]))")

    result = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=120,
                            env=BARE_ENV, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    location, server_modules = json.loads(result.stdout)
    assert Path(location).is_relative_to(tmp_path / "venv")
    assert server_modules == []


@pytest.fixture(scope="module")
def server_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with ``authsvc[server]`` installed from the built wheel file (not
    the checkout); its python."""
    python = _venv(tmp_path_factory.mktemp("server-venv") / "venv")
    wheel = dist / f"authsvc-{VERSION}-py3-none-any.whl"
    _pip_install(python, f"authsvc[server] @ {wheel.as_uri()}")
    return python


@dataclass
class Served:
    """``authsvc serve`` of the wheel's venv on its embedded PostgreSQL."""

    command: str
    address: str
    data: Path
    env: dict[str, str]

    def add_user(self, email: str, *args: str) -> str:
        added = subprocess.run([self.command, "users", "add", "--email", email,
                                "--password-stdin", "--data-dir", str(self.data), *args],
                               input=PASSWORD + "\n", capture_output=True, text=True,
                               env=self.env, timeout=120)
        assert added.returncode == 0, added.stderr
        return added.stdout.strip()


@pytest.fixture(scope="module")
def served(server_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``authsvc serve`` from the wheel's venv, shared by the tests of this module; it
    must stop cleanly (exit 0) when they are done."""
    command = str(server_venv.parent / "authsvc")
    env = {**server_env(), **BARE_ENV}
    env.pop("PYTHONPATH", None)
    data = tmp_path_factory.mktemp("wheel-server") / "data"
    port = free_port()
    server = Process([command, "serve", "--data-dir", str(data), "--listen",
                      f"127.0.0.1:{port}", "--workers", "1"], env)
    try:
        server.wait_for(f"listening on 127.0.0.1:{port}")
        yield Served(command, f"127.0.0.1:{port}", data, env)
    finally:
        server.stop()
    assert server.proc.returncode == 0, "\n".join(server.lines)


def test_the_wheel_with_the_server_extra_serves_and_answers_sign_in(served: Served):
    """``authsvc[server]`` from the wheel file: ``authsvc serve`` starts on its embedded
    PostgreSQL, ``authsvc users add`` adds a user, and SignIn answers with tokens."""
    served.add_user("wheel@example.com")

    with grpc.insecure_channel(served.address) as channel:
        tokens = auth_pb2_grpc.AuthStub(channel).SignIn(
            auth_pb2.SignInRequest(email="wheel@example.com", password=PASSWORD), timeout=60)

    assert tokens.access_token.count(".") == 2 and tokens.refresh_token


def _refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str | None]:
    try:
        call()
    except grpc.RpcError as error:
        failure = parse(error)
        return failure.code, failure.reason
    raise AssertionError("the call went through")


def test_the_wheel_protects_the_example_service(served: Served, server_venv: Path,
                                                tmp_path: Path):
    """examples/whoami.py, copied into an empty project and run by the wheel's venv as
    its own service account: a call without a token is UNAUTHENTICATED TOKEN_MISSING, a
    signed-in user's token reaches the handler, and once its session is revoked the
    token is refused, TOKEN_REVOKED (heard on WatchRevocations)."""
    served.add_user("whoami@example.com", "--scope", "authsvc.revocations")
    user_id = served.add_user("caller@example.com")
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy2(ROOT / "examples/whoami.py", project / "whoami.py")
    log = tmp_path / "whoami.log"
    port = free_port()
    with log.open("wb") as out:
        service = subprocess.Popen(
            [server_venv, "whoami.py", served.address, f"127.0.0.1:{port}"], cwd=project,
            env={**BARE_ENV, "WHOAMI_EMAIL": "whoami@example.com", "WHOAMI_PASSWORD": PASSWORD},
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        def started() -> bool:
            assert service.poll() is None, log.read_text()
            return f"example.v1.Whoami on port {port}" in log.read_text()

        eventually_blocking(started, 120, lambda: f"the example to start:\n{log.read_text()}")
        with grpc.insecure_channel(served.address) as channel, \
                grpc.insecure_channel(f"127.0.0.1:{port}") as whoami:
            auth = auth_pb2_grpc.AuthStub(channel)
            get = whoami.unary_unary("/example.v1.Whoami/Get")
            tokens = auth.SignIn(auth_pb2.SignInRequest(email="caller@example.com",
                                                        password=PASSWORD), timeout=60)

            missing = _refusal(lambda: get(b"", timeout=10))
            answer = get(b"", metadata=bearer(tokens.access_token), timeout=10)
            auth.Revoke(auth_pb2.RevokeRequest(token=tokens.refresh_token), timeout=60)
            refusals: list[tuple[grpc.StatusCode, str | None]] = []

            def refused() -> bool:
                try:
                    get(b"", metadata=bearer(tokens.access_token), timeout=10)
                except grpc.RpcError as error:
                    refusals.append((error.code(), parse(error).reason))
                return bool(refusals)

            eventually_blocking(refused, 10, "the revoked session's token to be refused")
    finally:
        service.terminate()
        service.wait(timeout=30)

    assert missing == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    assert answer == user_id.encode()
    assert refusals == [(grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")]


# --- JavaScript ---------------------------------------------------------------------------


def _npm() -> str:
    npm = shutil.which("npm")
    assert npm is not None, "npm not found: install Node.js 20 or newer with npm"
    return npm


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``npm pack`` of clients/js (its ``prepare`` builds dist/ first)."""
    out = tmp_path_factory.mktemp("npm-pack")
    packed = subprocess.run([_npm(), "pack", "--json", "--pack-destination", str(out)],
                            cwd=CLIENT, capture_output=True, text=True, timeout=600)
    assert packed.returncode == 0, packed.stderr
    return out / json.loads(packed.stdout)[0]["filename"]


def _empty_project(home: Path) -> Path:
    home.mkdir()
    (home / "package.json").write_text('{"name": "app", "private": true, "type": "module"}\n')
    return home


IMPORT_CHECK = """
import { createAuthClient, AuthError, memoryStore } from "@authsvc/client";
const auth = createAuthClient({ baseUrl: "http://127.0.0.1:1", mode: "body" });
console.log(JSON.stringify([typeof auth.signIn, typeof auth.getAccessToken,
  new AuthError("NETWORK_ERROR", "x") instanceof Error, typeof memoryStore]));
process.exit(0);  // the client's cross-tab channel would keep Node running
"""
IMPORTED = '["function","function",true,"function"]'


def test_the_npm_tarball_holds_dist_types_sources_readme_and_licence(tarball: Path):
    """The tarball has README, LICENSE (the repository's), ES modules each with its .d.ts,
    and source maps whose every source is in the tarball; nothing else."""
    with tarfile.open(tarball) as tar:
        files = {PurePosixPath(n).relative_to("package") for n in tar.getnames()
                 if tar.getmember(n).isfile()}
        read = {str(f): tar.extractfile(f"package/{f}").read() for f in files}  # type: ignore[union-attr]
    modules = {f for f in files if f.suffix == ".js"}
    maps = {f for f in files if f.name.endswith(".js.map")}

    assert {f.parts[0] for f in files} == {"package.json", "README.md", "LICENSE", "dist", "src"}
    assert read["LICENSE"] == (ROOT / "LICENSE").read_bytes()
    assert PurePosixPath("dist/index.js") in modules
    assert all(f.with_suffix(".d.ts") in files for f in modules)
    assert maps == {f.with_name(f.name + ".map") for f in modules}
    for path in maps:
        for source in json.loads(read[str(path)])["sources"]:
            assert PurePosixPath(os.path.normpath(path.parent / source)) in files, (path, source)
    manifest = json.loads(read["package.json"])
    assert manifest["type"] == "module"
    assert manifest["exports"]["."] == {"types": "./dist/index.d.ts", "default": "./dist/index.js"}


def test_the_tarball_installs_into_an_empty_project_and_imports_with_types(
        tarball: Path, tmp_path: Path):
    """Installed offline from the tarball, Node imports the client as an ES module and
    TypeScript (nodenext resolution) type-checks a file that uses it."""
    app = _empty_project(tmp_path / "app")
    installed = subprocess.run([_npm(), "install", "--offline", "--no-audit", "--no-fund",
                                str(tarball)], cwd=app, capture_output=True, text=True,
                               timeout=300)
    assert installed.returncode == 0, installed.stderr
    (app / "check.mjs").write_text(IMPORT_CHECK)
    (app / "typed.ts").write_text(
        'import { createAuthClient, type AuthClient } from "@authsvc/client";\n'
        'const auth: AuthClient = createAuthClient({ baseUrl: "https://auth.example.com" });\n'
        "export const token: Promise<string | null> = auth.getAccessToken();\n")

    ran = subprocess.run(["node", "check.mjs"], cwd=app, capture_output=True, text=True,
                         timeout=60)
    typed = subprocess.run(["node", str(CLIENT / "node_modules/typescript/bin/tsc"), "--noEmit",
                            "--strict", "--module", "nodenext", "--moduleResolution", "nodenext",
                            "--lib", "es2022,dom", "typed.ts"],
                           cwd=app, capture_output=True, text=True, timeout=300)

    assert (ran.returncode, ran.stdout.strip()) == (0, IMPORTED), ran.stderr
    assert typed.returncode == 0, typed.stdout + typed.stderr


def test_a_path_install_of_an_unbuilt_checkout_builds_the_client(tmp_path: Path):
    """``npm install <path to clients/js>`` from a clone with no dist/ and no node_modules
    builds dist/ (the prepare script) and the client imports."""
    clone = tmp_path / "clone"
    for name in _tree_files():
        if name.startswith("clients/js/"):
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    assert not (clone / "clients/js/dist").exists()
    app = _empty_project(tmp_path / "app")

    installed = subprocess.run([_npm(), "install", "--no-audit", "--no-fund",
                                str(clone / "clients/js")], cwd=app, capture_output=True,
                               text=True, timeout=600)
    (app / "check.mjs").write_text(IMPORT_CHECK)
    ran = subprocess.run(["node", "check.mjs"], cwd=app, capture_output=True, text=True,
                         timeout=60)

    assert installed.returncode == 0, installed.stderr
    assert (ran.returncode, ran.stdout.strip()) == (0, IMPORTED), ran.stderr


# --- Go -----------------------------------------------------------------------------------

PROGRAM = """package main

import (
\t"fmt"

\t"github.com/authsvc/authsvc/gateway/verify"
\tauthsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

func main() {
\t_ = verify.New
\tfmt.Println(authsvcv1.ErrorReason_TOKEN_EXPIRED)
}
"""


def test_a_go_program_imports_the_verify_module_without_the_gateways_libraries(tmp_path: Path):
    """A module outside the repository that requires gateway/verify (replaced by the
    checkout's path) builds and runs; neither it nor the verifier requires envoy or
    grpc-gateway, no package of theirs is compiled in, and the only envoy edges of its
    module graph are grpc's own go.mod (as in any gRPC program)."""
    go = _require_go()
    (tmp_path / "main.go").write_text(PROGRAM)
    (tmp_path / "go.mod").write_text(
        "module example.com/protected\n\ngo 1.26.0\n\n"
        "require github.com/authsvc/authsvc/gateway/verify v0.0.0-00010101000000-000000000000\n\n"
        f"replace github.com/authsvc/authsvc/gateway/verify => {ROOT / 'gateway/verify'}\n")
    env = {**os.environ, "GOWORK": "off", "GOFLAGS": "-mod=mod"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([go, *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=600, env=env)

    tidy = run("mod", "tidy")
    ran = run("run", ".")
    graph = run("mod", "graph")
    packages = run("list", "-deps", ".")

    def gateway_library(name: str) -> bool:
        return "envoyproxy" in name or "grpc-ecosystem" in name

    assert tidy.returncode == 0, tidy.stderr
    assert (ran.returncode, ran.stdout) == (0, "TOKEN_EXPIRED\n"), ran.stderr
    assert graph.returncode == 0 and packages.returncode == 0
    edges = [line.split() for line in graph.stdout.splitlines()]
    assert any(target.startswith("google.golang.org/grpc@") for _, target in edges)
    assert {source.partition("@")[0] for source, target in edges
            if gateway_library(target)} == {"google.golang.org/grpc"}
    assert not [t for _, t in edges if "grpc-ecosystem" in t]
    assert not gateway_library((tmp_path / "go.mod").read_text())
    assert [p for p in packages.stdout.split() if gateway_library(p)] == []


# --- the licence --------------------------------------------------------------------------


def test_one_licence_for_python_javascript_and_go():
    """pyproject and clients/js declare Apache-2.0; LICENSE at the root is its text, and
    clients/js/LICENSE is the same file (Go's module zips take the root's)."""
    text = (ROOT / "LICENSE").read_text()

    assert PYPROJECT["project"]["license"] == PACKAGE_JSON["license"] == "Apache-2.0"
    assert text.split()[:6] == ["Apache", "License", "Version", "2.0,", "January", "2004"]
    assert (CLIENT / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()
    assert "license" not in (ROOT / "gateway/verify/go.mod").read_text().lower()
