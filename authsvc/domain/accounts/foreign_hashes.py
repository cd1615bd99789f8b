"""Password hashes made by other systems, kept until their owner's first sign-in.

An imported user keeps the password they have: the hash their old system stored
is kept as it was (nothing is re-hashed at import) and checked here with the
scheme's own library — argon2-cffi, ``bcrypt``, hashlib's ``pbkdf2_hmac`` and
``scrypt``. The one scheme written out here is Firebase's modified scrypt, from
its published reference (github.com/firebase/scrypt, ``scryptenc_buf``): scrypt
of the password over ``salt + salt_separator`` (N = 2^memory_cost, r = rounds,
p = 1, 64 bytes), whose first 32 bytes key an AES-256-CTR stream (counter block
zero) that encrypts the project's signer key; the result is the stored hash.

A foreign hash lives in ``users.password_hash`` as ``$authsvc-import$`` followed
by the password object of the import format as canonical JSON, e.g.
``$authsvc-import${"hash":"$2b$12$…","scheme":"bcrypt"}``. argon2-cffi refuses
that string as a hash, so nothing mistakes it for a native one; the first
sign-in with the right password replaces it with authsvc's argon2id.

``check`` validates a password object at import time (no hashing: only shapes,
encodings and bounds on the cost a verification may take); ``verify`` is the
check at sign-in, run on the hashing threads.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import argon2
import bcrypt
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PREFIX = "$authsvc-import$"
WEAK_SCHEMES = frozenset({"md5", "sha1"})  # fast hashes: refused unless opted in
SCHEMES = ("argon2", "bcrypt", "pbkdf2", "scrypt", "firebase-scrypt", "django",
           "passlib", "md5", "sha1")
BCRYPT_MAX_BYTES = 72  # what every bcrypt hashed: longer passwords were truncated
MAX_PBKDF2_ITERATIONS = 10_000_000  # bounds the time one sign-in can hold a thread
MAX_SCRYPT_MEMORY = 256 * 1024 * 1024  # bytes (128 * n * r * p)
_PBKDF2_DIGESTS = ("sha1", "sha256", "sha512")
_DJANGO_PBKDF2 = {"pbkdf2_sha256": "sha256", "pbkdf2_sha1": "sha1"}
_PASSLIB_PBKDF2 = {"$pbkdf2$": "sha1", "$pbkdf2-sha256$": "sha256",
                   "$pbkdf2-sha512$": "sha512"}


class RefusedHash(ValueError):
    """A password object that cannot be kept: ``field`` and why (fixed text)."""

    def __init__(self, field: str, reason: str, *, weak: bool = False) -> None:
        self.field = field
        self.reason = reason
        self.weak = weak  # refused only because the operator did not opt in
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True, slots=True)
class _Spec:
    """Reads fields of one password object, naming the bad one."""

    raw: dict[str, Any]

    def text(self, key: str) -> str:
        value = self.raw.get(key)
        if not isinstance(value, str) or not value:
            raise RefusedHash(f"password.{key}", "must be a non-empty string")
        return value

    def b64(self, key: str) -> bytes:
        try:
            return base64.b64decode(self.text(key), validate=True)
        except binascii.Error:
            raise RefusedHash(f"password.{key}", "must be standard base64") from None

    def integer(self, key: str, low: int, high: int) -> int:
        value = self.raw.get(key)
        if type(value) is not int or not low <= value <= high:
            raise RefusedHash(f"password.{key}", f"must be an integer from {low} to {high}")
        return value

    def only(self, *keys: str) -> None:
        extra = sorted(set(self.raw) - {"scheme", *keys})
        if extra:
            raise RefusedHash(f"password.{extra[0]}", "is not a field of this scheme")


def check(raw: object, *, allow_weak: bool = False) -> dict[str, Any]:
    """The password object ``raw`` as it will be stored (validated; RefusedHash
    names the field otherwise). Nothing is hashed."""
    if not isinstance(raw, dict):
        raise RefusedHash("password", "must be an object")
    spec = _Spec(raw)
    scheme = raw.get("scheme")
    if scheme not in SCHEMES:
        raise RefusedHash("password.scheme", "must be one of " + ", ".join(SCHEMES))
    if scheme in WEAK_SCHEMES and not allow_weak:
        raise RefusedHash("password.scheme", f"{scheme} is a fast hash, refused unless "
                          "weak hashes are allowed", weak=True)
    _CHECKS[scheme](spec)
    return dict(raw)


def encode(checked: dict[str, Any]) -> str:
    """The ``users.password_hash`` value of a checked password object."""
    return PREFIX + json.dumps(checked, sort_keys=True, separators=(",", ":"))


def is_foreign(stored_hash: str) -> bool:
    return stored_hash.startswith(PREFIX)


def scheme_of(stored_hash: str) -> str:
    return str(json.loads(stored_hash[len(PREFIX):])["scheme"])


def verify(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches the foreign hash; a malformed one never matches.
    Blocking: run it on the hashing threads."""
    try:
        spec = json.loads(stored_hash[len(PREFIX):])
        return _VERIFY[spec["scheme"]](spec, password.encode())
    except (ValueError, KeyError, TypeError, VerificationError, InvalidHashError):
        return False


# -- import-time checks ------------------------------------------------------------

def _check_argon2(spec: _Spec) -> None:
    spec.only("hash")
    _argon2_phc(spec.text("hash"), "password.hash")


def _argon2_phc(phc: str, field: str) -> None:
    try:
        parameters = argon2.extract_parameters(phc)
    except InvalidHashError:
        raise RefusedHash(field, "must be an argon2 PHC string ($argon2id$v=19$…)") from None
    if parameters.memory_cost * 1024 > MAX_SCRYPT_MEMORY:
        raise RefusedHash(field, "asks for more memory than a sign-in may use")


def _check_bcrypt(spec: _Spec) -> None:
    spec.only("hash")
    _bcrypt_string(spec.text("hash"), "password.hash")


def _bcrypt_string(value: str, field: str) -> None:
    parts = value.split("$")
    if (len(parts) != 4 or parts[0] or parts[1] not in ("2a", "2b", "2y")
            or not parts[2].isdigit() or not 4 <= int(parts[2]) <= 31 or len(parts[3]) != 53):
        raise RefusedHash(field, "must be a bcrypt string ($2a$, $2b$ or $2y$, cost 4-31)")


def _check_pbkdf2(spec: _Spec) -> None:
    spec.only("digest", "iterations", "salt", "hash")
    if spec.raw.get("digest") not in _PBKDF2_DIGESTS:
        raise RefusedHash("password.digest", "must be one of " + ", ".join(_PBKDF2_DIGESTS))
    spec.integer("iterations", 1, MAX_PBKDF2_ITERATIONS)
    spec.b64("salt")
    if not spec.b64("hash"):
        raise RefusedHash("password.hash", "must not be empty")


def _check_scrypt(spec: _Spec) -> None:
    spec.only("n", "r", "p", "salt", "hash")
    n = spec.integer("n", 2, 1 << 30)
    if n & (n - 1):
        raise RefusedHash("password.n", "must be a power of 2")
    r = spec.integer("r", 1, 1024)
    p = spec.integer("p", 1, 64)
    if 128 * n * r * p > MAX_SCRYPT_MEMORY:
        raise RefusedHash("password.n", "asks for more memory than a sign-in may use")
    spec.b64("salt")
    if not spec.b64("hash"):
        raise RefusedHash("password.hash", "must not be empty")


def _check_firebase(spec: _Spec) -> None:
    spec.only("hash", "salt", "signer_key", "salt_separator", "rounds", "memory_cost")
    for key in ("hash", "salt", "signer_key"):
        spec.b64(key)
    if not isinstance(spec.raw.get("salt_separator"), str):
        raise RefusedHash("password.salt_separator", "must be a base64 string")
    try:
        base64.b64decode(spec.raw["salt_separator"], validate=True)
    except binascii.Error:
        raise RefusedHash("password.salt_separator", "must be standard base64") from None
    spec.integer("rounds", 1, 8)  # Firebase's ranges
    spec.integer("memory_cost", 1, 14)


def _check_django(spec: _Spec) -> None:
    spec.only("hash")
    value = spec.text("hash")
    algorithm, _, rest = value.partition("$")
    if algorithm in _DJANGO_PBKDF2:
        parts = rest.split("$")
        if len(parts) != 3 or not parts[0].isdigit() \
                or not 1 <= int(parts[0]) <= MAX_PBKDF2_ITERATIONS or not parts[2]:
            raise RefusedHash("password.hash", "must be pbkdf2_sha256$iterations$salt$hash")
        _b64_or_refuse(parts[2], "password.hash")
    elif algorithm in ("bcrypt", "bcrypt_sha256"):
        _bcrypt_string(rest, "password.hash")
    elif algorithm == "argon2":
        _argon2_phc("$" + rest, "password.hash")
    elif algorithm == "scrypt":
        parts = rest.split("$")
        if len(parts) != 5 or not all(p.isdigit() for p in (parts[0], parts[2], parts[3])):
            raise RefusedHash("password.hash", "must be scrypt$n$salt$r$p$hash")
        n, r, p = int(parts[0]), int(parts[2]), int(parts[3])
        if n < 2 or n & (n - 1) or not r or not p or 128 * n * r * p > MAX_SCRYPT_MEMORY:
            raise RefusedHash("password.hash", "has scrypt parameters out of range")
        _b64_or_refuse(parts[4], "password.hash")
    else:
        raise RefusedHash("password.hash", "must be a Django pbkdf2_sha256, pbkdf2_sha1, "
                          "bcrypt, bcrypt_sha256, argon2 or scrypt hash")


def _check_passlib(spec: _Spec) -> None:
    spec.only("hash")
    value = spec.text("hash")
    for prefix in _PASSLIB_PBKDF2:
        if value.startswith(prefix):
            parts = value[len(prefix):].split("$")
            if len(parts) != 3 or not parts[0].isdigit() \
                    or not 1 <= int(parts[0]) <= MAX_PBKDF2_ITERATIONS:
                raise RefusedHash("password.hash", f"must be {prefix}rounds$salt$checksum")
            _ab64_or_refuse(parts[1], "password.hash")
            _ab64_or_refuse(parts[2], "password.hash")
            return
    if value.startswith("$argon2"):
        _argon2_phc(value, "password.hash")
    elif value.startswith("$2"):
        _bcrypt_string(value, "password.hash")
    else:
        raise RefusedHash("password.hash", "must be a passlib pbkdf2, argon2 or bcrypt hash")


def _check_weak(spec: _Spec) -> None:
    spec.only("hash", "salt")
    value = spec.text("hash")
    size = 32 if spec.raw["scheme"] == "md5" else 40
    if len(value) != size or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise RefusedHash("password.hash", f"must be {size} hexadecimal digits")
    if "salt" in spec.raw and not isinstance(spec.raw["salt"], str):
        raise RefusedHash("password.salt", "must be a string")


def _b64_or_refuse(value: str, field: str) -> None:
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        raise RefusedHash(field, "has a malformed base64 part") from None


def _ab64_or_refuse(value: str, field: str) -> None:
    try:
        _ab64(value)
    except binascii.Error:
        raise RefusedHash(field, "has a malformed base64 part") from None


def _ab64(value: str) -> bytes:
    """passlib's "adapted base64": ``.`` for ``+``, no padding."""
    value = value.replace(".", "+")
    return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)


# -- sign-in verification ----------------------------------------------------------

def _verify_argon2(spec: dict[str, Any], password: bytes) -> bool:
    return _argon2_matches(spec["hash"], password)


def _argon2_matches(phc: str, password: bytes) -> bool:
    try:
        return argon2.PasswordHasher().verify(phc, password)
    except argon2.exceptions.VerifyMismatchError:
        return False


def _verify_bcrypt(spec: dict[str, Any], password: bytes) -> bool:
    return _bcrypt_matches(spec["hash"], password)


def _bcrypt_matches(value: str, password: bytes) -> bool:
    return bcrypt.checkpw(password[:BCRYPT_MAX_BYTES], value.encode())


def _verify_pbkdf2(spec: dict[str, Any], password: bytes) -> bool:
    expected = base64.b64decode(spec["hash"])
    got = hashlib.pbkdf2_hmac(spec["digest"], password, base64.b64decode(spec["salt"]),
                              spec["iterations"], dklen=len(expected))
    return hmac.compare_digest(got, expected)


def _verify_scrypt(spec: dict[str, Any], password: bytes) -> bool:
    expected = base64.b64decode(spec["hash"])
    got = _scrypt(password, base64.b64decode(spec["salt"]), spec["n"], spec["r"], spec["p"],
                  len(expected))
    return hmac.compare_digest(got, expected)


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, size: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=size,
                          maxmem=128 * n * r * p + 1024 * 1024)


def firebase_scrypt(password: bytes, salt: bytes, salt_separator: bytes, signer_key: bytes,
                    rounds: int, memory_cost: int) -> bytes:
    """Firebase's modified scrypt: the hash Firebase stores for ``password``."""
    derived = _scrypt(password, salt + salt_separator, 1 << memory_cost, rounds, 1, 64)
    encryptor = Cipher(algorithms.AES(derived[:32]), modes.CTR(bytes(16))).encryptor()
    return encryptor.update(signer_key) + encryptor.finalize()


def _verify_firebase(spec: dict[str, Any], password: bytes) -> bool:
    got = firebase_scrypt(password, base64.b64decode(spec["salt"]),
                          base64.b64decode(spec["salt_separator"]),
                          base64.b64decode(spec["signer_key"]), spec["rounds"],
                          spec["memory_cost"])
    return hmac.compare_digest(got, base64.b64decode(spec["hash"]))


def _verify_django(spec: dict[str, Any], password: bytes) -> bool:
    algorithm, _, rest = spec["hash"].partition("$")
    if algorithm in _DJANGO_PBKDF2:
        iterations, salt, expected = rest.split("$")
        got = hashlib.pbkdf2_hmac(_DJANGO_PBKDF2[algorithm], password, salt.encode(),
                                  int(iterations))
        return hmac.compare_digest(base64.b64encode(got).decode(), expected)
    if algorithm == "bcrypt":
        return _bcrypt_matches(rest, password)
    if algorithm == "bcrypt_sha256":  # Django hashes the password first (hex digest)
        return _bcrypt_matches(rest, hashlib.sha256(password).hexdigest().encode())
    if algorithm == "argon2":
        return _argon2_matches("$" + rest, password)
    n, salt, r, p, expected = rest.split("$")
    decoded = base64.b64decode(expected)
    got = _scrypt(password, salt.encode(), int(n), int(r), int(p), len(decoded))
    return hmac.compare_digest(got, decoded)


def _verify_passlib(spec: dict[str, Any], password: bytes) -> bool:
    value = spec["hash"]
    for prefix, digest in _PASSLIB_PBKDF2.items():
        if value.startswith(prefix):
            rounds, salt, checksum = value[len(prefix):].split("$")
            expected = _ab64(checksum)
            got = hashlib.pbkdf2_hmac(digest, password, _ab64(salt), int(rounds),
                                      dklen=len(expected))
            return hmac.compare_digest(got, expected)
    if value.startswith("$argon2"):
        return _argon2_matches(value, password)
    return _bcrypt_matches(value, password)


def _verify_weak(spec: dict[str, Any], password: bytes) -> bool:
    got = hashlib.new(spec["scheme"], spec.get("salt", "").encode() + password).hexdigest()
    return hmac.compare_digest(got, spec["hash"].lower())


_CHECKS: dict[str, Callable[[_Spec], None]] = {
    "argon2": _check_argon2, "bcrypt": _check_bcrypt, "pbkdf2": _check_pbkdf2,
    "scrypt": _check_scrypt, "firebase-scrypt": _check_firebase, "django": _check_django,
    "passlib": _check_passlib, "md5": _check_weak, "sha1": _check_weak,
}
_VERIFY: dict[str, Callable[[dict[str, Any], bytes], bool]] = {
    "argon2": _verify_argon2, "bcrypt": _verify_bcrypt, "pbkdf2": _verify_pbkdf2,
    "scrypt": _verify_scrypt, "firebase-scrypt": _verify_firebase, "django": _verify_django,
    "passlib": _verify_passlib, "md5": _verify_weak, "sha1": _verify_weak,
}
