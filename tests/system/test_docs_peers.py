"""The guides of a move run whole against the real peers: every block of
docs/guides/from-keycloak.md and docs/guides/from-supabase.md, in page order, the
export from the peer (tagged not run, for the docs runner has no peer) included.

The test brings up the peer as a reader's is: a PostgreSQL holding the users
scripts/peers creates through the peer's own API (tests/fixtures/peers/make_*.py),
Keycloak stopped after creating them as the guide asks, Supabase Auth serving. The page
then runs in the docs runner's clone (tests/system/test_docs.py) with what the reader's
shell has: ``$KEYCLOAK_HOME``, ``$JAVA_HOME`` and ``KC_DB*`` (the server's database
settings) for Keycloak; ``$SUPABASE_DB_URL`` and ``psql`` for Supabase. The page exports,
converts, imports and signs users in with their original passwords (and TOTP), and
every output it shows must be what the commands print, as with the committed exports.

Marked ``peers`` like tests/system/test_peer_exports.py: deselected unless
``AUTHSVC_PEERS=1`` (tests/system/conftest.py), because they need Java 21+ and the
Keycloak download, Go and Supabase Auth's source tree (under ``.tools/peers`` or
``$AUTHSVC_TOOLS/peers``; no registry serves it), and take minutes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures.peers import make_keycloak, make_supabase

from ..docs.blocks import ROOT
from . import test_docs
from .test_docs import Page, run_blocks

pytestmark = pytest.mark.peers
page_dir = test_docs.page_dir  # the fixture: a directory standing for a fresh clone


def _kc_environment(options: list[str]) -> dict[str, str]:
    """``--db-url=…`` as ``KC_DB_URL=…``: kc.sh's options as a server's environment."""
    found = {}
    for option in options:
        name, _, value = option.removeprefix("--").partition("=")
        found["KC_" + name.upper().replace("-", "_")] = value
    return found


def test_the_keycloak_guide_runs_against_a_real_keycloak(page_dir: Path, tmp_path: Path):
    """A realm in a real Keycloak's database is exported with the page's kc.sh command,
    converted, imported, and its users sign in as the page shows."""
    work = tmp_path / "keycloak"
    with make_keycloak.populated(work) as (home, db, env):
        page = Page(page_dir)
        page.env.update({"KEYCLOAK_HOME": str(home), "JAVA_HOME": env["JAVA_HOME"],
                         **_kc_environment(db)})
        try:
            run_blocks(ROOT / "docs/guides/from-keycloak.md", page, not_run_too=True)
        finally:
            page.stop()
    realm = page_dir / "export" / "acme-realm.json"
    assert realm.is_file() and not realm.is_symlink()  # made by the page's export


@pytest.mark.go
def test_the_supabase_guide_runs_against_a_real_supabase_auth(page_dir: Path):
    """auth.users of a serving Supabase Auth is dumped with the page's psql command,
    converted, imported, and its users sign in as the page shows."""
    from pgserver._commands import POSTGRES_BIN_PATH

    with make_supabase.running() as database:
        page = Page(page_dir)
        page.env.update({"SUPABASE_DB_URL": database,
                         "PATH": f"{POSTGRES_BIN_PATH}{os.pathsep}{page.env['PATH']}"})
        try:
            run_blocks(ROOT / "docs/guides/from-supabase.md", page, not_run_too=True)
        finally:
            page.stop()
    assert (page_dir / "auth-users.csv").read_text().startswith("instance_id,")
