"""The Firebase and home-made-table adapters write lines the import takes, whose
hashes verify the users' passwords.

Firebase's user and hash parameters are the ones in github.com/firebase/scrypt's
README (its sample project and user1), in the JSON shape firebase-tools'
accountExporter writes; the table's hashes are the published vectors of
test_foreign_hashes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from authsvc.domain.accounts import foreign_hashes
from authsvc.errors import InvalidArgument
from authsvc.importing import firebase, plain
from authsvc.importing.format import WeakHash, parse

from .test_foreign_hashes import DJANGO, FIREBASE

CONSOLE_CONFIG = """hash_config {
  algorithm: SCRYPT,
  base64_signer_key: %s,
  base64_salt_separator: Bw==,
  rounds: 8,
  mem_cost: 14,
}""" % FIREBASE["signer_key"]  # noqa: UP031 (the Console's text, braces and all)
EXPORT = {"users": [
    {"localId": "kYi4EvWQlQTKSfnJ3dRSP6IH3ed2", "email": "user1@test.com",
     "emailVerified": False, "passwordHash": FIREBASE["hash"], "salt": FIREBASE["salt"],
     "displayName": "Test User 1", "createdAt": "1508893925000",
     "lastSignedInAt": "1508893925000"},
    {"localId": "p2", "phoneNumber": "+15551234567", "createdAt": "1508893925000",
     "providerUserInfo": [{"providerId": "phone", "rawId": "+15551234567"}]},
]}


def test_the_firebase_console_config_and_export_verify_user1(tmp_path: Path, capsys):
    """The README's user1 comes out with Firebase's scrypt, and verifies its password."""
    (tmp_path / "hash.txt").write_text(CONSOLE_CONFIG)
    (tmp_path / "users.json").write_text(json.dumps(EXPORT, indent=2))

    status = firebase.main([str(tmp_path / "users.json"), "--hash-config",
                            str(tmp_path / "hash.txt")])
    written = [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    assert status == 0
    user1, phone_only = (parse(line) for line in written)
    assert (user1.external_id, user1.email, user1.email_verified, user1.scheme) == (
        "firebase:kYi4EvWQlQTKSfnJ3dRSP6IH3ed2", "user1@test.com", False, "firebase-scrypt")
    assert user1.created_at is not None and user1.created_at.year == 2017
    assert foreign_hashes.verify(user1.password_hash, "user1password")
    assert (phone_only.phone, phone_only.phone_verified, phone_only.scheme) == (
        "+15551234567", True, None)


def test_a_firebase_config_json_is_read_too_and_a_wrong_algorithm_is_refused():
    """The same keys as JSON work; a non-scrypt algorithm is an error naming it."""
    config = firebase.hash_config(json.dumps({
        "algorithm": "SCRYPT", "base64_signer_key": FIREBASE["signer_key"],
        "base64_salt_separator": "Bw==", "rounds": 8, "mem_cost": 14}))

    assert (config["rounds"], config["memory_cost"]) == (8, 14)
    with pytest.raises(ValueError, match="HMAC_SHA256 is not Firebase's scrypt"):
        firebase.hash_config("hash_config { algorithm: HMAC_SHA256, rounds: 1 }")


def test_a_home_made_csv_table_is_recognised_by_its_hash_strings(tmp_path: Path):
    """PHC, Django and passlib strings verify; bare hex is md5/sha1 (weak); anything
    else is refused naming password.scheme."""
    rows = [("1", "a@example.com", DJANGO[0][1]), ("2", "b@example.com", DJANGO[2][1]),
            ("3", "c@example.com", "$pbkdf2-sha256$6400$0ZrzXitFSGltTQnBWOsdAw"
                                   "$Y11AchqV4b0sUisdZd0Xr97KWoymNE0LNNrnEgY4H9M"),
            ("4", "d@example.com", "7cf6409a82cd4c8b96a9ecf6ad679119"),
            ("5", "e@example.com", "{SSHA}notsupported")]
    table = tmp_path / "users.csv"
    table.write_text("id,email,email_verified,password_hash\n"
                     + "".join(f"{i},{e},t,{h}\n" for i, e, h in rows))

    out = list(plain.lines(plain.read(table)))

    assert foreign_hashes.verify(parse(out[0]).password_hash, DJANGO[0][0])
    assert foreign_hashes.verify(parse(out[1]).password_hash, DJANGO[2][0])
    assert foreign_hashes.verify(parse(out[2]).password_hash, "password")
    assert parse(out[0]).email_verified is True
    with pytest.raises(WeakHash):
        parse(out[3])
    assert foreign_hashes.verify(parse(out[3], allow_weak=True).password_hash,
                                 "ExjGmyUT73bFoT")  # djangohashers' unsalted md5 vector
    with pytest.raises(InvalidArgument) as refused:
        parse(out[4])
    assert refused.value.field == "password.scheme"
