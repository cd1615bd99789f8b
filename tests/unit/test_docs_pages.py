"""The documentation pages keep their promises: every shell and python block is run by
the docs runner or is a reviewed exception, the generated command line page is what the
parser makes, and the error reasons page names every declared reason."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from authsvc.config.settings import Settings
from authsvc.runtime.cli_reference import PAGE as CLI_PAGE
from authsvc.runtime.cli_reference import render as render_cli
from authsvc.v1.error_reason_pb2 import ErrorReason

from ..docs.blocks import CHECKED, ROOT, blocks, pages, shows

INSTALLS = ("installs from your repository URL or checkout; tests/system/test_artefacts.py "
            "builds each artefact and installs it into an empty project, "
            "tests/unit/test_docs_pages.py checks the names and version these commands use")
# Blocks a test machine cannot run as written, each reviewed: page and reason. Adding
# one is a decision to review here, not a way round the runner.
NOT_RUN = sorted([
    ("README.md", "scripts/test is the test command itself (CI runs it); "
     "Try it below runs scripts/serve"),
    # Run with every other block of their pages by tests/system/test_docs_peers.py, which
    # only machines with the peers select (AUTHSVC_PEERS=1): CI has neither Keycloak nor
    # Supabase Auth's source.
    ("docs/guides/from-keycloak.md", "needs a Keycloak and its database; "
     "tests/system/test_docs_peers.py runs it against a real Keycloak (AUTHSVC_PEERS=1), "
     "and the docs runner puts the export scripts/peers/keycloak made from one in its "
     "place"),
    ("docs/guides/from-supabase.md", "needs a Supabase database; "
     "tests/system/test_docs_peers.py runs it against a real Supabase Auth "
     "(AUTHSVC_PEERS=1), and the docs runner puts the dump scripts/peers/supabase-auth "
     "made from one in its place"),
    *[("docs/guides/install.md", INSTALLS)] * 2,
    ("docs/guides/second-factors.md", "navigator.credentials needs a browser and an "
     "authenticator; tests/system/test_browser_passkeys.py runs these ceremonies in "
     "Chromium with a virtual authenticator"),
    ("docs/guides/kubernetes.md", "needs a container engine and a cluster; "
     "tests/system/test_kubernetes.py renders and checks the manifests, "
     "tests/unit/test_docs_pages.py the images, objects and Secret these commands name"),
    ("docs/guides/kubernetes.md", "needs a container engine; tests/rpc/test_packaging.py "
     "checks the Dockerfile and compose file, tests/unit/test_docs_pages.py the stages, "
     ".env and ports these commands use"),
])


def test_every_shell_and_python_block_is_run_shown_or_a_reviewed_exception() -> None:
    """A bash or python block is tagged run, output or file (a file a later block runs);
    the only blocks tagged not run, in any language, are the reviewed list above, each
    with its reason."""
    every = [b for page in pages() for b in blocks(page)]
    found = [b for b in every if b.lang in CHECKED]
    untagged = [b.where() for b in found if b.kind is None]
    not_run = sorted((b.page, b.arg or "") for b in every if b.kind == "not run")

    assert untagged == [], (
        "tag each block: <!-- run -->, <!-- output -->, <!-- file --> or <!-- not run: … -->")
    assert not_run == NOT_RUN


def test_a_file_block_shows_a_file_that_a_later_block_of_its_page_runs() -> None:
    """A block tagged file is one ``--8<--`` include of a file that exists (or of a
    section of it), and a run block after it on the same page runs that file (by its
    path or, for a module of examples/, by ``-m examples.NAME``)."""
    for page in pages():
        found = blocks(page)
        for i, block in enumerate(found):
            if block.kind != "file":
                continue
            assert block.include is not None, block.where()
            name = block.include.partition(":")[0]
            path = ROOT / name
            assert path.is_file() and block.text.strip(), block.where()
            names = {name}
            if path.suffix == ".py":
                names.add("-m " + ".".join(path.relative_to(ROOT).with_suffix("").parts))
            assert any(b.kind == "run" and any(n in b.text for n in names)
                       for b in found[i + 1:]), f"{block.where()}: no later block runs it"


def test_the_runner_has_pages_to_run() -> None:
    """The README's try-it commands, the tutorial and the guides that can run on a
    machine without containers are run by the docs runner."""
    running = {b.page for page in pages() for b in blocks(page) if b.kind == "run"}

    assert {"README.md", "docs/tutorial.md", "docs/guides/http.md",
            "docs/guides/accounts.md", "docs/guides/python-service.md",
            "docs/guides/second-factors.md", "docs/guides/login-page.md"} <= running


def test_an_output_block_follows_the_block_whose_output_it_is() -> None:
    """Each output block comes after a run block of its page that runs to its end."""
    for page in pages():
        previous = None
        for block in blocks(page):
            if block.kind == "output":
                assert previous is not None and previous.kind == "run" \
                    and previous.until is None, block.where()
            if block.kind in ("run", "not run", "output"):
                previous = block if block.kind != "output" else previous


def test_output_blocks_compare_as_documented() -> None:
    """``…`` stands for any text and white space for any white space; the rest is exact."""
    assert shows('{"id":"…","email":"a@example.com"}', '{"id":"0193-ab","email":"a@example.com"}')
    assert shows("a  b\nc", "a b c")
    assert not shows("after Revoke: TOKEN_REVOKED", "after Revoke: TOKEN_EXPIRED")
    assert not shows("x", "x y")


def test_the_committed_cli_page_is_what_the_parser_makes() -> None:
    """Regenerating the command line page changes nothing; when it would, the message
    says how."""
    assert (ROOT / CLI_PAGE).read_text() == render_cli(), (
        f"{CLI_PAGE} is stale: run `python -m authsvc.runtime.cli_reference --write`")


def test_the_cli_page_has_every_command() -> None:
    """Each command of the parser, users list and show among them, has its section."""
    page = render_cli()

    for command in ("serve", "migrate", "keys list", "keys rotate", "keys retire", "events",
                    "outbox", "users add", "users disable", "users show", "users list",
                    "users scopes", "users set-password"):
        assert f"\n## authsvc {command}\n" in page


def test_the_cli_reference_command_prints_the_page() -> None:
    """`python -m authsvc.runtime.cli_reference` prints the page the test above compares."""
    printed = subprocess.run([sys.executable, "-m", "authsvc.runtime.cli_reference"],
                             cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)

    assert printed.stdout == render_cli()


def test_the_error_reasons_page_names_every_reason_and_only_those() -> None:
    """The table of refusals in docs/reference/errors.md lists each declared reason
    (CLIENT_ERROR aside) and no other."""
    page = (ROOT / "docs" / "reference" / "errors.md").read_text()
    table = page.split("| situation | code | reason |", 1)[1].split("\n\n", 1)[0]
    named = {m for row in table.splitlines()[2:]
             for m in re.findall(r"\b[A-Z][A-Z_]{3,}\b", row.rsplit("|", 2)[-2])}
    declared = {value.name for value in ErrorReason.DESCRIPTOR.values}

    assert named == declared - {"ERROR_REASON_UNSPECIFIED", "CLIENT_ERROR"}


# --- the container pages: what their commands name exists and agrees -------------------


def _container_blocks() -> tuple[str, str]:
    """The Docker block and the Kubernetes block of the containers guide."""
    docker, kubernetes = [b.text for b in blocks(ROOT / "docs/guides/kubernetes.md")
                          if b.kind == "not run"]
    return docker, kubernetes


def _commands(block: str, program: str) -> list[list[str]]:
    """Each command of a block run by ``program``, split as the shell splits it."""
    lines = block.replace("\\\n", " ").splitlines()
    commands = [shlex.split(part, comments=True) for line in lines
                for part in re.split(r"\s&&\s|\s>>?\s", line)]
    return [c for c in commands if c and c[0] == program]


def _stages() -> list[str]:
    return re.findall(r"^FROM \S+ AS (\S+)$", (ROOT / "Dockerfile").read_text(), re.M)


def _secrets_made(block: str, tmp_path: Path) -> dict[str, str]:
    """What the block's ``python3 -c`` one-liners print, as NAME=VALUE."""
    made: dict[str, str] = {}
    for command in _commands(block, "python3"):
        printed = subprocess.run([sys.executable, *command[1:]], capture_output=True,
                                 text=True, check=True, timeout=60, cwd=tmp_path).stdout
        name, _, value = printed.strip().partition("=")
        made[name] = value
    return made


def test_the_docker_commands_build_stages_of_the_dockerfile_and_fill_the_compose_file(
        tmp_path: Path) -> None:
    """``docker build`` builds the Dockerfile's last stage (authsvc) or a named one that
    exists; the ``.env`` the one-liners write sets every variable compose.yaml requires,
    with a key-encryption key authsvc accepts; compose publishes the ports the comment
    names."""
    docker, _ = _container_blocks()
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    required = set(re.findall(r"\$\{(\w+):\?", (ROOT / "compose.yaml").read_text()))
    builds = _commands(docker, "docker")
    targets = [c[c.index("--target") + 1] if "--target" in c else None
               for c in builds if c[1] == "build"]
    made = _secrets_made(docker, tmp_path)
    published = {port.rsplit(":", 1)[0] for service in compose["services"].values()
                 for port in service.get("ports", [])}

    assert _stages()[-1] == "authsvc" and targets == [None, "gateway"]
    assert set(targets) - {None} <= set(_stages())
    assert {s["build"]["target"] for s in compose["services"].values() if "build" in s} \
        == {"authsvc", "gateway"}
    assert set(made) == required == {"AUTHSVC_KEY_ENCRYPTION_KEY", "POSTGRES_PASSWORD"}
    assert Settings.from_env({"AUTHSVC_KEY_ENCRYPTION_KEY": made["AUTHSVC_KEY_ENCRYPTION_KEY"]}
                             ).key_encryption_key is not None
    assert {"127.0.0.1:50051", "127.0.0.1:8080"} <= published
    assert "docker compose up --build" in docker


def test_the_kubernetes_commands_name_what_the_manifests_hold(tmp_path: Path) -> None:
    """The images built are the example overlay's (REGISTRY its registry, the tag the
    package's version); the kustomizations applied exist and parse; the namespace, the
    Secret with its two keys, the Job and the Deployments waited for are the ones the
    manifests name; the key-encryption key the block makes is one authsvc accepts."""
    _, block = _container_blocks()
    k8s = ROOT / "deploy/kubernetes"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    example = yaml.safe_load((k8s / "example/kustomization.yaml").read_text())
    images = {f"{i['newName']}:{i['newTag']}" for i in example["images"]}
    built = {c[c.index("-t") + 1].replace("REGISTRY", "registry.example.com")
             for c in _commands(block, "docker") if c[1] == "build"}
    kubectl = _commands(block, "kubectl")
    applied = [c[c.index("-k") + 1] for c in kubectl if c[1] == "apply"]
    secret = next(c for c in kubectl if c[1:3] == ["-n", "auth"] and "secret" in c)
    keys = {k.split("=", 1)[0] for k in (a.removeprefix("--from-literal=") for a in secret
                                         if a.startswith("--from-literal="))}
    documents = [d for path in sorted(k8s.rglob("*.yaml"))
                 for d in yaml.safe_load_all(path.read_text()) if d]
    objects = {(d["kind"], d["metadata"]["name"]) for d in documents if "metadata" in d}
    referenced = {(ref["name"], ref["key"]) for d in documents
                  for ref in _secret_refs(d)}
    waited = {c[-1] for c in kubectl if "rollout" in c or "wait" in c}
    kek = re.search(r"key-encryption-key=\"\$\(python3 -c '([^']+)'\)\"", block)

    assert images == built and {i["newTag"] for i in example["images"]} == {version}
    assert applied == ["example/migrate", "example"]
    assert all(yaml.safe_load((k8s / a / "kustomization.yaml").read_text()) for a in applied)
    assert {yaml.safe_load((k8s / a / "kustomization.yaml").read_text())["namespace"]
            for a in applied} == {"auth"}
    assert next(c for c in kubectl if "namespace" in c)[1:] == ["create", "namespace", "auth"]
    assert secret[3:7] == ["create", "secret", "generic", "authsvc"]
    assert referenced == {("authsvc", key) for key in keys} \
        == {("authsvc", "database-url"), ("authsvc", "key-encryption-key")}
    assert waited == {"job/authsvc-migrate", "deployment/authsvc", "deployment/authsvc-gateway"}
    assert {("Job", "authsvc-migrate"), ("Deployment", "authsvc"),
            ("Deployment", "authsvc-gateway")} <= objects
    assert kek is not None
    printed = subprocess.run([sys.executable, "-c", kek.group(1)], capture_output=True,
                             text=True, check=True, timeout=60).stdout.strip()
    assert Settings.from_env({"AUTHSVC_KEY_ENCRYPTION_KEY": printed}).key_encryption_key


def _secret_refs(node: object) -> list[dict[str, str]]:
    """Every ``secretKeyRef`` in a manifest."""
    if isinstance(node, dict):
        found = [node["secretKeyRef"]] if "secretKeyRef" in node else []
        return found + [r for value in node.values() for r in _secret_refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _secret_refs(value)]
    return []


def test_the_install_commands_name_the_package_its_version_and_the_go_module() -> None:
    """The Python block installs ``authsvc`` with the ``server`` extra, builds with
    ``python -m build`` and installs the wheel of the version pyproject declares; the Go
    block requires and replaces the module gateway/verify/go.mod declares, by the path
    of that directory in a checkout named authsvc."""
    python, go = [b.text for b in blocks(ROOT / "docs/guides/install.md")
                  if b.kind == "not run"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    module = (ROOT / "gateway/verify/go.mod").read_text().splitlines()[0].removeprefix("module ")
    installed = [c[2] for c in _commands(python, "pip") if c[1] == "install"]

    assert project["name"] == "authsvc" and "server" in project["optional-dependencies"]
    assert installed == [f"authsvc[server] @ git+https://…/authsvc.git@v{project['version']}",
                         "./authsvc",
                         f"dist/authsvc-{project['version']}-py3-none-any.whl[server]"]
    assert "python -m build --outdir dist ./authsvc" in python
    assert f"-require={module}@v0.0.0-00010101000000-000000000000" in go.split()
    assert f"-replace={module}=../authsvc/gateway/verify" in go.split()
    assert (ROOT / "gateway/verify/go.mod").is_file()
