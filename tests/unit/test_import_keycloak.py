"""The Keycloak adapter reads a real realm export (Keycloak 26.7.3, made by
scripts/peers/keycloak) into the import format: every password it carries checks
against the password the user was created with, with the schemes' own libraries."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import argon2
import pytest

from authsvc.importing import Unconvertible, keycloak
from tests.fixtures.peers import FIXTURES
from tests.fixtures.peers.passwords import matches

REALM = json.loads((FIXTURES / "keycloak" / "realm.json").read_text())
MANIFEST = {u["username"]: u for u in json.loads((FIXTURES / "keycloak" /
                                                   "manifest.json").read_text())}
RECORDS = list(keycloak.users(REALM))
BY_USERNAME = {r.get("username", r.get("email")): r for r in RECORDS}


def test_every_exported_user_becomes_one_record():
    """One record per exported user, keyed by realm and Keycloak id."""
    assert sorted(BY_USERNAME) == sorted(MANIFEST)
    assert sorted(r["external_id"] for r in RECORDS) == sorted(
        f"keycloak:acme:{u['id']}" for u in REALM["users"])


@pytest.mark.parametrize("username", sorted(MANIFEST))
def test_each_password_checks_against_the_original(username):
    """The carried hash accepts the user's password and refuses another."""
    password = BY_USERNAME[username]["password"]
    assert matches(password, MANIFEST[username]["password"])
    assert not matches(password, MANIFEST[username]["password"] + "x")


def test_each_hash_policy_maps_to_its_scheme_and_parameters():
    """pbkdf2, pbkdf2-sha256, pbkdf2-sha512 keep digest and iterations; argon2 is a PHC string."""
    seen = {(MANIFEST[name]["policy"], r["password"]["scheme"],
             r["password"].get("digest")) for name, r in BY_USERNAME.items()}
    assert seen == {("hashAlgorithm(pbkdf2)", "pbkdf2", "sha1"),
                    ("hashAlgorithm(pbkdf2-sha256)", "pbkdf2", "sha256"),
                    ("hashAlgorithm(pbkdf2-sha512)", "pbkdf2", "sha512"),
                    ("hashAlgorithm(argon2)", "argon2", None)}
    params = argon2.extract_parameters(BY_USERNAME["linus"]["password"]["hash"])
    assert (params.type, params.version, params.memory_cost, params.time_cost,
            params.parallelism, params.hash_len) == (argon2.Type.ID, 19, 7168, 5, 1, 32)


def test_the_otp_credential_becomes_the_authenticator_apps_secret():
    """The OTP user's totp secret is the Base32 their app holds (Keycloak accepted a
    code made from it when the export was made)."""
    record = BY_USERNAME["margaret"]
    assert record["totp"] == {"secret": MANIFEST["margaret"]["totp_secret"],
                              "algorithm": "SHA1", "digits": 6, "period": 30}
    assert [name for name, r in BY_USERNAME.items() if "totp" in r] == ["margaret"]


def test_flags_identifiers_and_creation_time():
    """emailVerified, enabled and createdTimestamp carry over; no email, a username alone."""
    for name, record in BY_USERNAME.items():
        entry = MANIFEST[name]
        assert record.get("email") == entry["email"]
        assert record.get("email_verified", False) == entry["email_verified"]
        assert record.get("disabled", False) == (not entry["enabled"])
        assert record["username"] == name
    exported = {u["username"]: u for u in REALM["users"]}
    moment = datetime.fromisoformat(BY_USERNAME["ada"]["created_at"])
    assert moment.tzinfo == UTC
    assert int(moment.timestamp() * 1000) == exported["ada"]["createdTimestamp"]
    assert set(BY_USERNAME["no-email-ned"]) == {"external_id", "username", "password",
                                                 "created_at"}


def _user(username: str) -> dict[str, Any]:
    return copy.deepcopy(next(u for u in REALM["users"] if u["username"] == username))


def test_a_username_that_is_the_email_is_left_out():
    """Realms that use the email as username give the email alone."""
    user = _user("ada")
    user["username"] = "ADA@example.com"
    record = keycloak.user_record("acme", user)
    assert "username" not in record and record["email"] == "ada@example.com"


def test_a_base32_encoded_otp_secret_is_kept_as_it_is():
    """credentialData.secretEncoding BASE32 means the stored secret is the Base32 already."""
    user = _user("margaret")
    otp = next(c for c in user["credentials"] if c["type"] == "otp")
    data = json.loads(otp["credentialData"])
    otp["credentialData"] = json.dumps({**data, "secretEncoding": "BASE32"})
    otp["secretData"] = json.dumps({"value": "jbswy3dpehpk3pxp"})
    assert keycloak.user_record("acme", user)["totp"]["secret"] == "JBSWY3DPEHPK3PXP"


def test_users_that_cannot_be_carried_over_are_refused_with_the_reason():
    """An unknown hash algorithm, an hotp credential or two OTP devices go to on_refused."""
    unknown = _user("ada")
    cred = unknown["credentials"][0]
    cred["credentialData"] = cred["credentialData"].replace("pbkdf2-sha512", "bcrypt")
    hotp = _user("margaret")
    otp = next(c for c in hotp["credentials"] if c["type"] == "otp")
    otp["credentialData"] = otp["credentialData"].replace('"totp"', '"hotp"')
    two = _user("margaret")
    two["credentials"].append(copy.deepcopy(next(c for c in two["credentials"]
                                                 if c["type"] == "otp")))
    broken = _user("linus")
    broken["credentials"][0]["secretData"] = "not json"
    refused: list[Unconvertible] = []
    records = list(keycloak.users({"realm": "acme", "users": [unknown, hotp, two, broken,
                                                              _user("grace")]},
                                  on_refused=refused.append))
    assert [r["username"] for r in records] == ["grace"]
    assert [e.external_id for e in refused] == [
        f"keycloak:acme:{u['id']}" for u in (unknown, hotp, two, broken)]
    assert "'bcrypt'" in refused[0].reason and "hotp" in refused[1].reason
    assert "more than one OTP" in refused[2].reason and "JSON" in refused[3].reason


def test_without_a_callback_a_refusal_raises():
    """Nobody is dropped silently: with no on_refused the first refusal raises."""
    user = _user("ada")
    user["credentials"][0]["credentialData"] = "{\"algorithm\":\"md5\"}"
    with pytest.raises(Unconvertible, match="md5"):
        list(keycloak.users({"realm": "acme", "users": [user]}))


def test_a_document_without_a_realm_is_not_a_realm_export():
    """A file that is not a realm export fails at once, not user by user."""
    with pytest.raises(ValueError, match="realm"):
        list(keycloak.users({"users": []}))


def test_the_command_writes_lines_and_lists_refusals(tmp_path, capsys):
    """python -m authsvc.importing.keycloak: one JSON line per user on stdout, each
    refused user with its reason on stderr, then a count."""
    user = _user("ada")
    user["credentials"][0]["credentialData"] = "{\"algorithm\":\"md5\"}"
    realm = tmp_path / "acme-realm.json"
    realm.write_text(json.dumps({"realm": "acme", "users": [user, _user("linus")]}))

    assert keycloak.main([str(realm)]) == 0

    out, err = capsys.readouterr()
    assert [json.loads(line)["username"] for line in out.splitlines()] == ["linus"]
    refused, count = err.splitlines()
    assert json.loads(refused)["external_id"] == f"keycloak:acme:{user['id']}"
    assert count == "keycloak: 1 users written, 1 refused"


def test_the_command_stops_at_an_unreadable_file(tmp_path, capsys):
    """A file that is not JSON: status 2 and its name on stderr, nothing written."""
    broken = tmp_path / "acme-realm.json"
    broken.write_text("{")
    assert keycloak.main([str(broken)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and str(broken) in err
