"""The docs runner: every block of a page tagged ``<!-- run -->`` is run, in page order,
against real processes, as a new user on a fresh clone would type it, and the outputs a
page shows are compared with what the commands print (tags: tests/docs/blocks.py).

A page's blocks share one temporary directory, which stands for the clone: every entry
of the repository is linked into it except the embedded database's ``.authsvc`` and the
mail catcher's ``mail``, so the data a page makes is its own. Shell blocks share their
variables and working directory (one terminal); a python block is a whole program run by
``.venv/bin/python``. The well-known ports (authsvc 127.0.0.1:50051, its metrics
127.0.0.1:9464, the gateway 127.0.0.1:8080 and 8443, the example service
127.0.0.1:50061, the mail catcher 127.0.0.1:8025, the login demo 127.0.0.1:5173) are
swapped for free ones wherever the number stands as a word, in the blocks, the outputs
they are compared with and the environment, so the runner can run beside a developer's
own ``scripts/serve``; nothing else of a block is changed. Background blocks (a server)
are stopped with SIGTERM when the page is done.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..docs.blocks import ROOT, SHELL, Block, blocks, pages, shows

# Pages that start the Go gateway (scripts/gateway builds it) need the toolchain.
NEEDS_GO = {"docs/guides/http.md", "docs/guides/accounts.md", "docs/guides/login-page.md",
            "docs/guides/second-factors.md", "docs/guides/federation.md"}
BLOCK_TIMEOUT = 600.0  # the first scripts/serve or scripts/gateway may install or build
_DEFAULT_PORTS = {"authsvc": 50051, "metrics": 9464, "gateway": 8080, "whoami": 50061,
                  "mail": 8025, "demo": 5173, "https": 8443,
                  "oidc": 9998, "github": 9997}  # the federation guide's two providers
_KEEP_OUT = {".authsvc", ".git", "mail"}  # mail: the accounts guide's catcher
# The guides of a move export from the reader's peer in a block tagged not run (a test
# machine has no Keycloak or Supabase); the runner puts in the file that block writes the
# export scripts/peers made from the real peer, and runs the rest of the page against it.
# tests/system/test_docs_peers.py runs every block, that one too, against a running peer.
PEER_EXPORTS = {
    "docs/guides/from-keycloak.md": ("export/acme-realm.json",
                                     "tests/fixtures/peers/keycloak/realm.json"),
    "docs/guides/from-supabase.md": ("auth-users.csv",
                                     "tests/fixtures/peers/supabase/auth-users.csv"),
}
# Shell variables a block leaves for the next (bash's own ones aside).
_SAVE_STATE = r"""
__authsvc_docs_vars=$(compgen -v | grep -vxF -f "$__AUTHSVC_DOCS_BASE" \
    | grep -v -e '^BASH' -e '^_' -e '^PIPESTATUS$' -e '^FUNCNAME$' -e '^COLUMNS$' \
        -e '^LINES$' || true)
{ [[ -z "$__authsvc_docs_vars" ]] || declare -p $__authsvc_docs_vars; } > "$__AUTHSVC_DOCS_STATE"
pwd > "$__AUTHSVC_DOCS_CWD"
"""


def _runnable() -> list[Path]:
    return [page for page in pages() if any(b.kind == "run" for b in blocks(page))]


# A well-known port, as 127.0.0.1:8080 or a bare 5173 (not inside a longer number).
_WELL_KNOWN = re.compile(
    r"(?<![\w.])(" + "|".join(str(port) for port in _DEFAULT_PORTS.values()) + r")(?!\w)")
_NAME_OF = {str(port): name for name, port in _DEFAULT_PORTS.items()}


def with_ports(text: str, ports: dict[str, int]) -> str:
    """``text`` with each well-known port replaced by this page's free port for it, in
    one pass: a free port that happens to be another well-known one (the gateway's
    landing on 50061, say) is not replaced again."""
    return _WELL_KNOWN.sub(lambda found: str(ports[_NAME_OF[found.group(1)]]), text)


def test_each_well_known_port_is_replaced_once() -> None:
    ports = {name: 40000 + i for i, name in enumerate(_DEFAULT_PORTS)}
    ports["gateway"] = _DEFAULT_PORTS["whoami"]  # a free port that is another default

    text = with_ports("curl http://127.0.0.1:8080/x; serve 127.0.0.1:50061 5173 150051", ports)

    assert text == (f"curl http://127.0.0.1:50061/x; serve 127.0.0.1:{ports['whoami']} "
                    f"{ports['demo']} 150051")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Page:
    """One page's run: its directory, ports, environment and background processes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        for entry in ROOT.iterdir():
            if entry.name not in _KEEP_OUT:
                (directory / entry.name).symlink_to(entry)
        if not (ROOT / ".venv").exists():  # a venv elsewhere (AUTHSVC_VENV): the one running
            (directory / ".venv").symlink_to(Path(sys.executable).parent.parent)
        self.state = directory / ".docs-shell-state"
        self.cwd_file = directory / ".docs-shell-cwd"
        self.base_vars = directory / ".docs-shell-base"
        self.ports = {name: _free_port() for name in _DEFAULT_PORTS}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC_")}
        self.env.update({
            "AUTHSVC_LISTEN": f"127.0.0.1:{self.ports['authsvc']}",
            "AUTHSVC_METRICS_LISTEN": f"127.0.0.1:{self.ports['metrics']}",
            "AUTHSVC_GATEWAY_LISTEN": f"127.0.0.1:{self.ports['gateway']}",
            "AUTHSVC_GATEWAY_UPSTREAM": f"127.0.0.1:{self.ports['authsvc']}",
            # The cheap hash keeps the runner fast on a loaded machine; no page shows it.
            "AUTHSVC_ARGON2_PROFILE": "test-only-cheapest",
            "AUTHSVC_WORKERS": "2",
            # Python's output as a terminal shows it, a line at a time (a background
            # block's "Serving HTTP…" would otherwise wait in a buffer).
            "PYTHONUNBUFFERED": "1",
            "__AUTHSVC_DOCS_STATE": str(self.state),
            "__AUTHSVC_DOCS_CWD": str(self.cwd_file),
            "__AUTHSVC_DOCS_BASE": str(self.base_vars),
        })
        self.cwd_file.write_text(str(directory))
        self.state.write_text("")
        self.background: list[tuple[subprocess.Popen[bytes], Path]] = []

    def text(self, block: Block) -> str:
        return with_ports(block.text, self.ports)

    def command(self, block: Block, number: int) -> list[str]:
        source = self.directory / f".docs-block-{number}"
        if block.lang in SHELL:
            source.write_text(
                'compgen -v > "$__AUTHSVC_DOCS_BASE"\n'
                'source "$__AUTHSVC_DOCS_STATE"\ncd "$(cat "$__AUTHSVC_DOCS_CWD")"\n'
                "set -euo pipefail\n" + self.text(block) + "\n" + _SAVE_STATE)
            return ["bash", str(source)]
        if block.lang in ("python", "py"):
            source.write_text(self.text(block))
            return [str(self.directory / ".venv" / "bin" / "python"), str(source)]
        raise AssertionError(f"{block.where()}: the runner runs bash and python, not "
                             f"{block.lang!r}")

    def run(self, block: Block, number: int) -> str:
        """Run a block to its end; its standard output."""
        done = subprocess.run(self.command(block, number), cwd=self.directory, env=self.env,
                              capture_output=True, text=True, timeout=BLOCK_TIMEOUT,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0, (
            f"{block.where()} failed (exit {done.returncode}):\n{block.text}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}\n{self.logs()}")
        return done.stdout

    def start(self, block: Block, number: int, until: str) -> None:
        """Start a background block and wait until its output says ``until``."""
        log = self.directory / f".docs-block-{number}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(self.command(block, number), cwd=self.directory,
                                       env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        self.background.append((process, log))
        deadline = time.monotonic() + BLOCK_TIMEOUT
        while until not in log.read_text(errors="replace"):
            assert process.poll() is None, (
                f"{block.where()} exited ({process.returncode}) before printing {until!r}:\n"
                f"{log.read_text(errors='replace')}")
            assert time.monotonic() < deadline, (
                f"{block.where()} never printed {until!r}:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)

    def logs(self) -> str:
        return "\n".join(f"--- {shlex.quote(str(log.name))}\n{log.read_text(errors='replace')}"
                         for _, log in self.background)

    def stop(self) -> None:
        for process, _ in reversed(self.background):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process, _ in reversed(self.background):
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture
def page_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory standing for a fresh clone, with the venv ready for scripts/serve."""
    subprocess.run([str(ROOT / "scripts" / "bootstrap"), "server"], check=True, timeout=600)
    yield tmp_path


@pytest.mark.parametrize("path", [
    pytest.param(page, id=str(page.relative_to(ROOT)),
                 marks=[pytest.mark.go] if str(page.relative_to(ROOT)) in NEEDS_GO else [])
    for page in _runnable()])
def test_every_tagged_block_of_the_page_runs(path: Path, page_dir: Path) -> None:
    """Each run block of the page succeeds in order, and each output block shown is what
    the run block before it printed."""
    page = Page(page_dir)
    written = PEER_EXPORTS.get(str(path.relative_to(ROOT)))
    if written is not None:
        (page_dir / written[0]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / written[1], page_dir / written[0])
    try:
        run_blocks(path, page)
    finally:
        page.stop()


def run_blocks(path: Path, page: Page, *, not_run_too: bool = False) -> None:
    """Run the page's run blocks in order (and its blocks tagged not run, with
    ``not_run_too``), comparing each output block with what the block before it printed."""
    printed: str | None = None
    for number, block in enumerate(blocks(path)):
        if block.kind == "run" or (not_run_too and block.kind == "not run"):
            until = block.until if block.kind == "run" else None
            if until is None:
                printed = page.run(block, number)
            else:
                page.start(block, number, until)
                printed = None
        elif block.kind == "output":
            assert printed is not None, f"{block.where()}: output of no run block"
            assert shows(page.text(block), printed), (
                f"{block.where()}: the page shows\n{block.text}\nbut the command printed\n"
                f"{printed}")
