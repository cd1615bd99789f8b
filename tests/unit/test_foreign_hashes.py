"""Foreign password hashes: published vectors of each scheme, and what import refuses.

Every vector here is published by the scheme's owner or its reference port, never
made up: Firebase's from github.com/firebase/scrypt's README; Django's from
Django's tests/auth_tests/test_hashers.py (and the djangohashers port of it);
passlib's from its documentation; RFC 6070 (PBKDF2-HMAC-SHA1) and RFC 7914
(scrypt) for the plain schemes. bcrypt ones are made by the ``bcrypt`` library.
"""

from __future__ import annotations

import base64

import bcrypt
import pytest

from authsvc.domain.accounts import foreign_hashes
from authsvc.domain.accounts.foreign_hashes import RefusedHash

# github.com/firebase/scrypt README: "Sample Password hash parameters" and user1.
FIREBASE = {
    "scheme": "firebase-scrypt",
    "signer_key": "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYU"
                  "SDzZvpjeJ9WmXA==",
    "salt_separator": "Bw==", "rounds": 8, "memory_cost": 14,
    "salt": "42xEC+ixf3L2lw==",
    "hash": "lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198"
            "JAdRuid5lQ==",
}

DJANGO = [  # (password, stored hash)
    ("lètmein", "pbkdf2_sha256$260000$seasalt$YlZ2Vggtqdc61YjArZuoApoBh9JNGYoDRBUGu6tcJQo="),
    ("lètmein", "pbkdf2_sha1$260000$seasalt2$wAibXvW6jgvatCdONi6SMJ6q7mI="),
    ("ExjGmyUT73bFoT",
     "bcrypt_sha256$$2b$12$LZSJchsWG/DrBy1erNs4eeYo6tZNlLFQmONdxN9HPesa1EyXVcTXK"),
    ("ExjGmyUT73bFoT", "bcrypt$$2b$12$LZSJchsWG/DrBy1erNs4ee31eJ7DaWiuwhDOC7aqIyqGGggfu6Y/."),
    ("secret", "argon2$argon2id$v=19$m=102400,t=2,p=8$Y041dExhNkljRUUy$TMa6A8fPJhCAUXRhJXCXdw"),
    ("lètmein", "scrypt$16384$seasalt$8$1$Qj3+9PPyRjSJIebHnG81TMjsqtaIGxNQG/aEB/NYafTJ7tibgf"
                "Yz71m0ldQESkXFRkdVCBhhY8mx7rQwite/Pw=="),
]


def _stored(spec: dict[str, object], *, allow_weak: bool = False) -> str:
    return foreign_hashes.encode(foreign_hashes.check(spec, allow_weak=allow_weak))


def test_firebase_scrypt_matches_the_reference_readme_vector() -> None:
    """Firebase's modified scrypt gives the README's hash for user1's password."""
    stored = _stored(FIREBASE)
    assert foreign_hashes.verify(stored, "user1password")
    assert not foreign_hashes.verify(stored, "user1password ")


@pytest.mark.parametrize(("password", "value"), DJANGO, ids=lambda v: str(v)[:16])
def test_django_hashes_from_djangos_own_tests_verify(password: str, value: str) -> None:
    """Each Django hasher's published hash verifies its password and no other."""
    stored = _stored({"scheme": "django", "hash": value})
    assert foreign_hashes.verify(stored, password)
    assert not foreign_hashes.verify(stored, password + "z")


def test_passlib_pbkdf2_sha256_from_its_documentation_verifies() -> None:
    """passlib's documented pbkdf2_sha256 hash (adapted base64) verifies "password"."""
    stored = _stored({"scheme": "passlib", "hash": "$pbkdf2-sha256$6400$0ZrzXitFSGltTQnBW"
                      "OsdAw$Y11AchqV4b0sUisdZd0Xr97KWoymNE0LNNrnEgY4H9M"})
    assert foreign_hashes.verify(stored, "password")
    assert not foreign_hashes.verify(stored, "Password")


def test_pbkdf2_matches_rfc_6070() -> None:
    """PBKDF2-HMAC-SHA1, "password"/"salt", 4096 iterations (RFC 6070 vector 3)."""
    stored = _stored({"scheme": "pbkdf2", "digest": "sha1", "iterations": 4096,
                      "salt": base64.b64encode(b"salt").decode(),
                      "hash": base64.b64encode(bytes.fromhex(
                          "4b007901b765489abead49d926f721d065a429c1")).decode()})
    assert foreign_hashes.verify(stored, "password")
    assert not foreign_hashes.verify(stored, "passwore")


def test_scrypt_matches_rfc_7914() -> None:
    """scrypt "password"/"NaCl", N=1024, r=8, p=16 (RFC 7914 section 12)."""
    stored = _stored({"scheme": "scrypt", "n": 1024, "r": 8, "p": 16,
                      "salt": base64.b64encode(b"NaCl").decode(),
                      "hash": base64.b64encode(bytes.fromhex(
                          "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
                          "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640",
                      )).decode()})
    assert foreign_hashes.verify(stored, "password")
    assert not foreign_hashes.verify(stored, "Password")


@pytest.mark.parametrize("prefix", [b"2a", b"2b", b"2y"])
def test_bcrypt_variants_verify(prefix: bytes) -> None:
    """$2a$, $2b$ and $2y$ bcrypt strings verify (the ones Supabase and PHP store)."""
    made = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(4, prefix=b"2b"))
    value = (b"$" + prefix + made[3:]).decode()
    stored = _stored({"scheme": "bcrypt", "hash": value})
    assert foreign_hashes.verify(stored, "correct horse")
    assert not foreign_hashes.verify(stored, "correct horsf")


def test_bcrypt_checks_the_first_72_bytes_as_bcrypt_always_did() -> None:
    """A password longer than 72 bytes matches on its first 72, as where it was made."""
    long = "x" * 80
    made = bcrypt.hashpw(long.encode()[:72], bcrypt.gensalt(4)).decode()
    assert foreign_hashes.verify(_stored({"scheme": "bcrypt", "hash": made}), long)


def test_weak_schemes_are_refused_unless_allowed() -> None:
    """md5 (Django's md5$salt$hash vector) is refused, and verifies once allowed."""
    spec = {"scheme": "md5", "salt": "KQ8zeK6wKRuR", "hash": "0137e4d74cb2d9ed9cb1a5f391f6175e"}
    with pytest.raises(RefusedHash) as refused:
        foreign_hashes.check(spec)
    assert (refused.value.field, refused.value.weak) == ("password.scheme", True)
    assert foreign_hashes.verify(_stored(spec, allow_weak=True), "ExjGmyUT73bFoT")
    unsalted = {"scheme": "sha1", "hash": "22e6217f026c7a395f0840c1ffbdb163072419e7"}
    assert foreign_hashes.verify(_stored(unsalted, allow_weak=True), "ExjGmyUT73bFoT")


@pytest.mark.parametrize(("spec", "field"), [
    ({"scheme": "rot13", "hash": "x"}, "password.scheme"),
    ({"scheme": "bcrypt", "hash": "$2b$99$abc"}, "password.hash"),
    ({"scheme": "bcrypt", "hash": "$2b$10$" + "a" * 53, "cost": 10}, "password.cost"),
    ({"scheme": "argon2", "hash": "$argon2id$nope"}, "password.hash"),
    ({"scheme": "pbkdf2", "digest": "md5", "iterations": 1, "salt": "", "hash": "AA=="},
     "password.digest"),
    ({"scheme": "pbkdf2", "digest": "sha256", "iterations": 0, "salt": "c2FsdA==",
      "hash": "AA=="}, "password.iterations"),
    ({"scheme": "pbkdf2", "digest": "sha256", "iterations": 10, "salt": "not base64!",
      "hash": "AA=="}, "password.salt"),
    ({"scheme": "scrypt", "n": 1000, "r": 8, "p": 1, "salt": "c2FsdA==", "hash": "AA=="},
     "password.n"),
    ({"scheme": "scrypt", "n": 1 << 20, "r": 8, "p": 1, "salt": "c2FsdA==", "hash": "AA=="},
     "password.n"),
    ({**FIREBASE, "rounds": 9}, "password.rounds"),
    ({"scheme": "django", "hash": "crypt$$KQW3RFkgPSuuA"}, "password.hash"),
    ("bcrypt", "password"),
])
def test_malformed_or_too_costly_hashes_are_refused_naming_the_field(
        spec: object, field: str) -> None:
    """A hash that cannot be checked, or would hold a sign-in too long, is refused."""
    with pytest.raises(RefusedHash) as refused:
        foreign_hashes.check(spec)
    assert refused.value.field == field
    assert not refused.value.weak


def test_a_corrupt_stored_foreign_hash_never_matches() -> None:
    """A damaged ``$authsvc-import$`` value is a mismatch, not an exception."""
    for corrupt in ("$authsvc-import${", '$authsvc-import${"scheme":"nope"}',
                    '$authsvc-import${"scheme":"bcrypt","hash":"$2b$"}'):
        assert not foreign_hashes.verify(corrupt, "anything")
