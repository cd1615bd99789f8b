"""The documentation pages keep their promises: every shell and python block is run by
the docs runner or is a reviewed exception, the generated command line page is what the
parser makes, and the error reasons page names every declared reason."""

from __future__ import annotations

import re
import subprocess
import sys

from authsvc.runtime.cli_reference import PAGE as CLI_PAGE
from authsvc.runtime.cli_reference import render as render_cli
from authsvc.v1.error_reason_pb2 import ErrorReason

from ..docs.blocks import CHECKED, ROOT, blocks, pages, shows

INSTALLS = ("installs from your repository URL or checkout; tests/system/test_artefacts.py "
            "builds each artefact and installs it into an empty project")
# Blocks a test machine cannot run as written, each reviewed: page and reason. Adding
# one is a decision to review here, not a way round the runner.
NOT_RUN = sorted([
    ("README.md", "scripts/test is the test command itself (CI runs it); "
     "Try it below runs scripts/serve"),
    ("docs/guides/accounts.md", "needs a mail server to read the codes from"),
    ("docs/guides/http.md", "needs a certificate and key issued for your host"),
    *[("docs/guides/install.md", INSTALLS)] * 2,
    ("docs/guides/kubernetes.md", "needs a container engine and a cluster; "
     "tests/system/test_kubernetes.py renders and checks the manifests"),
    ("docs/guides/kubernetes.md", "needs a container engine; tests/rpc/test_packaging.py "
     "checks the Dockerfile and compose file"),
    ("docs/guides/login-page.md", "opens a browser; examples/tests/test_js_login_page.py "
     "builds this page in an empty project and drives it in Chromium"),
    ("docs/guides/python-service.md", "a fragment of a client; tests/rpc/test_client.py "
     "runs these credentials"),
    ("docs/guides/python-service.md", "a fragment of a service; examples/whoami.py is the "
     "whole of it, run by examples/tests"),
    ("docs/guides/second-factors.md", "a fragment of a service's set-up; "
     "tests/rpc/test_step_up.py runs it"),
    ("docs/guides/second-factors.md", "the codes come from an authenticator app; "
     "tests/system/test_factors_http.py runs this flow"),
])


def test_every_shell_and_python_block_is_run_shown_or_a_reviewed_exception() -> None:
    """A bash or python block is tagged run or output; the only ones not run are the
    reviewed list above, each with its reason."""
    found = [b for page in pages() for b in blocks(page) if b.lang in CHECKED]
    untagged = [b.where() for b in found if b.kind is None]
    not_run = sorted((b.page, b.arg or "") for b in found if b.kind == "not run")

    assert untagged == [], "tag each block: <!-- run -->, <!-- output --> or <!-- not run: … -->"
    assert not_run == NOT_RUN


def test_the_runner_has_pages_to_run() -> None:
    """The README's try-it commands and the tutorial are run by the docs runner."""
    running = {b.page for page in pages() for b in blocks(page) if b.kind == "run"}

    assert {"README.md", "docs/tutorial.md", "docs/guides/http.md"} <= running


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
