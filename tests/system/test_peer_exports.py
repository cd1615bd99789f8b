"""The real peers still export what the adapters read.

Each test runs a peer's export script (scripts/peers/) into a temporary directory:
a real Keycloak or Supabase Auth, users created through its API, its export. The
adapter must read every user of the new export with no refusal, every password
must check against the manifest's, and the export must have the shape of the
committed fixture (the same keys per user, credential and column): a new peer
release that changes its format fails here, and the fixture is then regenerated
with the script and the adapter reviewed.

Marked ``peers``: deselected unless ``AUTHSVC_PEERS=1`` (tests/system/conftest.py),
because they download and build the peers (Keycloak ~170 MB with Java 21+ and
mvn, about 3 minutes; Supabase Auth with Go and its source tree, about 2 minutes
for the first build). With the flag set, a missing tool fails the test naming it.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from authsvc.importing import keycloak, supabase
from tests.fixtures.peers import FIXTURES
from tests.fixtures.peers.passwords import matches

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 1500  # seconds: a first run downloads Keycloak or builds Supabase Auth

pytestmark = pytest.mark.peers


def _export(script: str, out: Path) -> None:
    log = out / "script.log"
    with log.open("wb") as sink:
        done = subprocess.run([str(ROOT / "scripts" / "peers" / script), "--out", str(out)],
                              stdout=sink, stderr=subprocess.STDOUT, timeout=TIMEOUT)
    assert done.returncode == 0, log.read_text(errors="replace")[-4000:]


def _keycloak_shape(realm: dict[str, Any]) -> set[tuple[str, ...]]:
    """The keys of each user, and of each credential and its two JSON strings per
    type and algorithm: what the adapter depends on."""
    shape: set[tuple[str, ...]] = set()
    for user in realm["users"]:
        shape.add(("user", *sorted(user)))
        for cred in user.get("credentials", []):
            data = json.loads(cred["credentialData"])
            kind = (cred["type"], str(data.get("algorithm", data.get("subType"))))
            shape.add(("credential", *kind, *sorted(cred)))
            shape.add(("credentialData", *kind, *sorted(data)))
            shape.add(("secretData", *kind, *sorted(json.loads(cred["secretData"]))))
    return shape


def test_keycloak_still_exports_what_the_adapter_reads(tmp_path):
    """A fresh Keycloak export converts without refusal, its passwords and TOTP secret
    are the manifest's, and its shape is the committed fixture's."""
    _export("keycloak", tmp_path)
    realm = json.loads((tmp_path / "realm.json").read_text())
    manifest = {u["username"]: u for u in json.loads((tmp_path / "manifest.json").read_text())}

    records = {r["username"]: r for r in keycloak.users(realm)}  # a refusal raises

    assert sorted(records) == sorted(manifest)
    for name, record in records.items():
        assert matches(record["password"], manifest[name]["password"]), name
        assert record.get("totp", {}).get("secret") == manifest[name].get("totp_secret")
    committed = json.loads((FIXTURES / "keycloak" / "realm.json").read_text())
    assert _keycloak_shape(realm) == _keycloak_shape(committed), (
        "Keycloak's export changed shape: regenerate tests/fixtures/peers/keycloak with "
        "scripts/peers/keycloak and review authsvc/importing/keycloak.py")


@pytest.mark.go
def test_supabase_auth_still_exports_what_the_adapter_reads(tmp_path):
    """A fresh auth.users dump converts without refusal, its passwords are the
    manifest's, and its columns are the committed fixture's."""
    _export("supabase-auth", tmp_path)
    text = (tmp_path / "auth-users.csv").read_text()
    manifest = json.loads((tmp_path / "manifest.json").read_text())

    records = list(supabase.users(io.StringIO(text, newline=""), now=datetime.now(UTC)))

    by_login = {r.get("email", r.get("phone")): r for r in records}
    assert sorted(by_login) == sorted(e.get("email") or e["phone"] for e in manifest)
    for entry in manifest:
        record = by_login[entry.get("email") or entry["phone"]]
        assert record["password"]["scheme"] == entry["scheme"]
        assert matches(record["password"], entry["password"]), entry
    committed = (FIXTURES / "supabase" / "auth-users.csv").read_text()
    header = next(csv.reader(io.StringIO(text, newline="")))
    assert header == next(csv.reader(io.StringIO(committed, newline=""))), (
        "auth.users changed columns: regenerate tests/fixtures/peers/supabase with "
        "scripts/peers/supabase-auth and review authsvc/importing/supabase.py")
