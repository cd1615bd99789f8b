"""Users exported from a real Keycloak and a real Supabase Auth (the committed exports
of scripts/peers/) move to authsvc and sign in with the password they had there.

The whole path as an operator runs it: the peer's adapter on the command line
(``python -m authsvc.importing.keycloak|supabase``), ``authsvc users import`` of its
output, then SignIn over gRPC with each user's original password from the
export's manifest (and the code of their authenticator app where they had one).
Every user who may sign in does, and is on argon2id afterwards; a user who was
disabled (Keycloak) or banned (Supabase) there is refused here and keeps the
foreign hash.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

from authsvc.domain.factors import totp
from authsvc.v1 import auth_pb2
from tests.fixtures.peers import FIXTURES

from ..helpers import authsvc as cli
from ..helpers import fails
from .test_factors import complete, db_step, error_metadata

PEERS = {  # peer: (adapter module, export file)
    "keycloak": ("authsvc.importing.keycloak", FIXTURES / "keycloak" / "realm.json"),
    "supabase": ("authsvc.importing.supabase", FIXTURES / "supabase" / "auth-users.csv"),
}


def _manifest(peer: str) -> list[dict[str, Any]]:
    return list(json.loads((FIXTURES / peer / "manifest.json").read_text()))


def _identifier(entry: dict[str, Any]) -> dict[str, str]:
    """How the user names themselves at SignIn: email, else phone, else username."""
    for kind in ("email", "phone", "username"):
        if entry.get(kind):
            return {kind: entry[kind]}
    raise AssertionError(f"no identifier in {entry}")


def _adapt(peer: str, out: Path) -> int:
    """Run the peer's adapter as an operator would; the number of lines written."""
    module, export = PEERS[peer]
    done = subprocess.run([sys.executable, "-m", module, str(export)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.endswith(" refused\n") and " 0 refused" in done.stderr, done.stderr
    out.write_text(done.stdout)
    return len(done.stdout.splitlines())


async def _stored_hashes(database_url: str) -> dict[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT coalesce(email, phone, username) AS login,"
                                " password_hash FROM users WHERE external_id IS NOT NULL")
        return {row["login"]: row["password_hash"] for row in rows}
    finally:
        await conn.close()


async def _sign_in(stub, database_url: str, entry: dict[str, Any]) -> str:
    """SignIn with the original password (and TOTP code); the access token."""
    request = auth_pb2.SignInRequest(password=entry["password"], **_identifier(entry))
    if not entry.get("totp_secret"):
        return str((await stub.SignIn(request)).access_token)
    try:
        await stub.SignIn(request)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        metadata = error_metadata(error)
    else:
        raise AssertionError(f"{entry['username']} signed in without their second factor")
    secret = _b32(entry["totp_secret"])
    done = await complete(stub, metadata["mfa_token"],
                          totp=totp.code(secret, await db_step(database_url)))
    return str(done.access_token)


def _b32(text: str) -> bytes:
    return base64.b32decode(text + "=" * (-len(text) % 8))


@pytest.mark.parametrize("peer", sorted(PEERS))
async def test_every_user_of_a_real_export_signs_in_with_their_old_password(
        peer, settings, stub, database_url, tmp_path):
    """Adapter, import, then SignIn: each enabled user gets a session with the password
    (and TOTP) they had, and their hash becomes argon2id; disabled ones are refused."""
    lines = tmp_path / "users.jsonl"
    count = _adapt(peer, lines)
    # The running server's key, since the command reads the same signing keys.
    kek = base64.urlsafe_b64encode(settings.key_encryption_key.reveal()).decode()
    imported = await asyncio.to_thread(cli, database_url, "users", "import", str(lines),
                                       env={"AUTHSVC_KEY_ENCRYPTION_KEY": kek})
    assert imported.returncode == 0, imported.stderr
    summary = json.loads(imported.stdout.splitlines()[-1])["summary"]
    assert summary["created"] == count == len(_manifest(peer)), summary

    for entry in _manifest(peer):
        if entry.get("disabled") or entry.get("enabled") is False:
            failure = await fails(stub.SignIn(auth_pb2.SignInRequest(
                password=entry["password"], **_identifier(entry))))
            assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                                      "INVALID_CREDENTIALS"), entry
        else:
            assert await _sign_in(stub, database_url, entry), entry

    hashes = await _stored_hashes(database_url)
    for entry in _manifest(peer):
        login = next(iter(_identifier(entry).values()))
        kept = entry.get("disabled") or entry.get("enabled") is False
        prefix = "$authsvc-import$" if kept else "$argon2id$"
        assert hashes[login].startswith(prefix), (login, hashes[login][:20])
