"""The container image and compose file, checked without a container engine:
the Dockerfile installs what the README's path (scripts/serve → scripts/bootstrap)
installs, the same way, and the image runs as documented."""

from __future__ import annotations

import ast
import asyncio
import re
import runpy
import shlex
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from ..conftest import ROOT
from ..servers import free_port

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """Each build stage's instructions, by stage name."""
    named: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for word, rest in instructions(text):
        if word == "FROM":
            current = []
            named[rest.split()[-1] if " AS " in rest.upper() else rest] = current
        current.append((word, rest))
    return named


DOCKERFILE = (ROOT / "Dockerfile").read_text()
STAGES = stages(DOCKERFILE)
FINAL = list(STAGES.values())[-1]


def pip_installs(commands: str) -> list[list[str]]:
    """The argument lists of every ``pip install`` in the shell ``commands``."""
    found = []
    for line in re.sub(r"\\\n", " ", commands).splitlines():
        if "pip install" not in line or line.lstrip().startswith("#"):
            continue
        lexer = shlex.shlex(line.replace("$ROOT/", "").replace("$ROOT", "."),
                            posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for word in [*lexer, "&&"]:
            if word in ("&&", "||", ";", "|"):
                if "pip" in command and "install" in command[command.index("pip"):]:
                    found.append(command[command.index("install", command.index("pip")) + 1:])
                command = []
            else:
                command.append(word)
    return found


def constraint_files(args: list[str]) -> list[str]:
    return [Path(args[i + 1]).name for i, a in enumerate(args) if a in ("-c", "--constraint")]


def test_dockerfile_installs_like_the_readme_with_the_same_constraints_and_the_server():
    """Every pip install in the image pins with constraints.txt, as scripts/bootstrap
    does, and the package goes in with what scripts/serve asks for: the server extra."""
    bootstrap = pip_installs((ROOT / "scripts/bootstrap").read_text())
    docker = [args for stage in STAGES.values() for word, rest in stage if word == "RUN"
              for args in pip_installs(rest)]
    project_installs = [a for a in bootstrap if "-e" in a]
    serve = (ROOT / "scripts/serve").read_text()
    serve_extras = re.search(r'scripts/bootstrap"?(?P<args>[^\n]*)', serve)

    assert len(project_installs) == 1
    assert constraint_files(project_installs[0]) == ["constraints.txt"]
    assert serve_extras is not None and serve_extras["args"].strip() == "server"
    dependency_installs = [a for a in docker if "-r" in a or "." in a]
    assert len(dependency_installs) == 2
    for args in dependency_installs:
        assert constraint_files(args) == ["constraints.txt"], args
    assert "." in dependency_installs[1] and "--no-deps" in dependency_installs[1]
    assert not any(a.startswith(".[") for args in docker for a in args)  # deps came first


def test_dockerfile_installs_dependencies_before_copying_the_source():
    """Only pyproject.toml and constraints.txt are in the image when the
    dependencies install, and the requirements are pyproject's own lists: the
    base dependencies and the server extra."""
    build = STAGES["build"]
    copies = [(i, rest) for i, (word, rest) in enumerate(build) if word == "COPY"]
    installs = [i for i, (word, rest) in enumerate(build)
                if word == "RUN" and any("-r" in a for a in pip_installs(rest))]

    assert copies[0][1].split() == ["pyproject.toml", "constraints.txt", "./"]
    assert len(installs) == 1 and copies[0][0] < installs[0] < copies[1][0]
    assert '["project"]' in build[installs[0]][1]
    assert 'p["dependencies"] + p["optional-dependencies"]["server"]' in build[installs[0]][1]
    assert any(rest.startswith("authsvc ") for _, rest in copies[1:])


def test_the_image_python_is_the_one_pyproject_requires_and_ci_checks():
    """The base image's Python satisfies requires-python and is the version mypy
    and ruff target."""
    version = re.search(r"ARG PYTHON_VERSION=(\d+\.\d+)", DOCKERFILE)
    bases = [rest for stage in STAGES.values() for word, rest in stage
             if word == "FROM" and rest.startswith("python:")]

    assert version is not None
    assert bases and all(b.startswith("python:${PYTHON_VERSION}-slim") for b in bases)
    assert version[1] + ".0" in SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert PYPROJECT["tool"]["mypy"]["python_version"] == version[1]
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + version[1].replace(".", "")


def test_the_image_runs_authsvc_serve_as_a_non_root_user_with_a_health_check():
    """The final stage runs `authsvc serve` on 0.0.0.0:50051 as a non-root user,
    with a HEALTHCHECK that asks the gRPC health service."""
    final = dict(FINAL)
    users = [rest for word, rest in FINAL if word == "USER"]
    env = " ".join(rest for word, rest in FINAL if word == "ENV")

    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert final["ENTRYPOINT"] == '["authsvc", "serve"]'
    assert "authsvc" in PYPROJECT["project"]["scripts"]
    assert "AUTHSVC_LISTEN=0.0.0.0:50051" in env
    assert "authsvc-healthcheck" in final["HEALTHCHECK"]
    assert "COPY scripts/healthcheck /usr/local/bin/authsvc-healthcheck" in DOCKERFILE


def test_the_gateway_stage_builds_gateway_with_its_own_flags():
    """The gateway target builds gateway/ with go build and passes flags it has."""
    build = " ".join(rest for word, rest in STAGES["gateway-build"] if word == "RUN")
    entry = dict(STAGES["gateway"])["ENTRYPOINT"]
    flags = set(re.findall(r'fs\.\w+Var\([^,]+, "([a-z-]+)"', (ROOT / "gateway/main.go")
                           .read_text()))
    go_version = re.search(r"^go (\d+\.\d+)", (ROOT / "gateway/go.mod").read_text(), re.M)

    assert "go build" in build
    assert {"listen", "upstream"} <= flags
    assert "--listen" in entry
    assert go_version is not None and f"ARG GO_VERSION={go_version[1]}" in DOCKERFILE


def test_compose_runs_postgres_authsvc_and_the_gateway():
    """compose.yaml parses; PostgreSQL has a health check that authsvc waits for,
    authsvc takes its database URL and key from the environment, the gateway
    waits for a healthy authsvc, and each build target is a Dockerfile stage."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    authsvc, gateway = services["authsvc"], services["gateway"]

    assert set(services) == {"postgres", "authsvc", "gateway"}
    assert services["postgres"]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert authsvc["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert authsvc["environment"]["AUTHSVC_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in authsvc["environment"]["AUTHSVC_DATABASE_URL"]
    assert authsvc["environment"]["AUTHSVC_KEY_ENCRYPTION_KEY"].startswith(
        "${AUTHSVC_KEY_ENCRYPTION_KEY:?")
    grace = float(authsvc["environment"]["AUTHSVC_SHUTDOWN_GRACE"])
    assert float(authsvc["stop_grace_period"].removesuffix("s")) > grace
    assert gateway["depends_on"]["authsvc"]["condition"] == "service_healthy"
    assert gateway["command"] == ["--upstream", "authsvc:50051"]
    assert {authsvc["build"]["target"], gateway["build"]["target"]} <= set(STAGES)


def test_secrets_and_local_state_stay_out_of_the_build_context():
    """.dockerignore keeps .env, .git and the local virtual environment out."""
    ignored = set((ROOT / ".dockerignore").read_text().split())

    assert {".env", ".git", ".venv", ".authsvc"} <= ignored


def _installed_closure(requirements: list[str]) -> set[str]:
    """Distributions that installing ``requirements`` brings in, from the metadata
    of what is installed here."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        extras = sorted(req.extras) or [""]
        key = name + "[" + ",".join(extras) + "]"
        if key in seen:
            continue
        seen.add(key)
        for raw in metadata.requires(req.name) or []:
            sub = Requirement(raw)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(sub)
    return {k.partition("[")[0] for k in seen}


def _third_party_imports(paths: list[Path]) -> dict[str, str]:
    """Top-level third-party module → a file of ``paths`` that imports it."""
    found: dict[str, str] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0
                     and node.module else [])
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top != "authsvc":
                    found[top] = str(path.relative_to(ROOT))
    return found


def _uncovered(imports: dict[str, str], requirements: list[str]) -> dict[str, str]:
    closure = _installed_closure(requirements)
    providers = metadata.packages_distributions()
    return {top: where for top, where in imports.items()
            if not {canonicalize_name(d) for d in providers.get(top, [])} & closure}


GUARD_SIDE = ["guard", "core", "v1", "errors.py", "clock.py", "interceptor.py",
              "verifiers.py", "client.py", "__init__.py"]


def test_the_base_dependencies_cover_every_import_of_the_guard():
    """What a protected service imports needs only [project].dependencies."""
    paths = [p for name in GUARD_SIDE for p in
             ((ROOT / "authsvc" / name).rglob("*.py") if "." not in name
              else [ROOT / "authsvc" / name])]

    assert _uncovered(_third_party_imports(paths), PYPROJECT["project"]["dependencies"]) == {}


def test_the_server_extra_covers_every_import_of_the_package():
    """The server (scripts/serve, the image) needs the base and the server extra only."""
    requirements = [*PYPROJECT["project"]["dependencies"],
                    *PYPROJECT["project"]["optional-dependencies"]["server"]]

    imports = _third_party_imports(list((ROOT / "authsvc").rglob("*.py")))

    assert _uncovered(imports, requirements) == {}, "imported but in neither list"


async def test_the_health_check_script_says_serving_or_fails(server):
    """scripts/healthcheck exits 0 printing SERVING for a running authsvc, and 1
    when nothing answers."""
    def check(address: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(ROOT / "scripts/healthcheck"), address],
                              capture_output=True, text=True, timeout=20)

    up = await asyncio.to_thread(check, f"127.0.0.1:{server}")
    down = await asyncio.to_thread(check, f"127.0.0.1:{free_port()}")

    assert (up.returncode, up.stdout.strip()) == (0, "SERVING")
    assert down.returncode == 1
    assert "UNAVAILABLE" in down.stderr


async def test_the_health_check_script_run_by_another_python_uses_the_venv(server):
    """Run by a Python without grpcio (here: one without site-packages), the script
    starts again with the project's virtualenv Python instead of failing."""
    venv = Path(sys.executable).parent.parent
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-S", str(ROOT / "scripts/healthcheck"),
                         f"127.0.0.1:{server}"],
        capture_output=True, text=True, timeout=20, env={"AUTHSVC_VENV": str(venv)})

    assert (result.returncode, result.stdout.strip()) == (0, "SERVING"), result.stderr


@pytest.mark.parametrize("listen", ["0.0.0.0:50099", "127.0.0.1:50099"])
def test_the_health_check_script_asks_loopback_on_the_listen_port(listen, monkeypatch):
    """Without an argument, scripts/healthcheck asks 127.0.0.1 on AUTHSVC_LISTEN's port."""
    monkeypatch.setenv("AUTHSVC_LISTEN", listen)
    monkeypatch.setattr(sys, "argv", ["healthcheck"])
    script = runpy.run_path(str(ROOT / "scripts/healthcheck"), run_name="healthcheck")

    assert script["target"]() == "127.0.0.1:50099"
