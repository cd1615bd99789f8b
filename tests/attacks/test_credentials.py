"""Credentials under attack: sign-in answers that give nothing away (that they cost
the same is counted in test_enumeration.py), passwords taken exactly as given, and
stored hashes that are damaged.

The kit cases share one server per module.
"""

from __future__ import annotations

import uuid

import pytest

from ..helpers import PASSWORD
from .kit import NO_TOKEN_CHALLENGE, UNAUTHENTICATED

# --- SignIn -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["email", "phone", "username"])
def test_unknown_user_wrong_password_and_disabled_account_answer_alike(kit, kind):
    """Unknown identifier, wrong password and disabled account (with its right password)
    get identical answers: code, reason, message, details and trailers."""
    known = {"email": "dave@example.com", "phone": "+14155550123", "username": "dave"}[kind]
    unknown = {"email": "nobody@example.com", "phone": "+14155550199",
               "username": "nobody"}[kind]
    disabled = {"email": "carol@example.com", "phone": "+14155550177",
                "username": "carol"}[kind]
    accounts = kit.service.app.accounts
    kit.service.run(accounts.add(kind, known, PASSWORD))
    kit.service.run(accounts.disable(kit.service.run(accounts.add(kind, disabled, PASSWORD))))
    before = kit.service.snapshot()

    answers = [kit.sign_in_refused(**{kind: who}, password=password)
               for who, password in [(unknown, PASSWORD), (known, "wrong password"),
                                     (disabled, PASSWORD)]]

    assert answers[0] == answers[1] == answers[2]
    assert (answers[0].code, answers[0].reason, answers[0].message) == (
        UNAUTHENTICATED, "INVALID_CREDENTIALS", "The identifier or password is wrong.")
    assert answers[0].challenge == NO_TOKEN_CHALLENGE
    assert kit.service.snapshot() == before


NEAR_MISSES = {
    "trailing-space": PASSWORD + " ",
    "leading-space": " " + PASSWORD,
    "last-char-dropped": PASSWORD[:-1],
    "trailing-newline": PASSWORD + "\n",
    "trailing-crlf": PASSWORD + "\r\n",
    "trailing-tab": PASSWORD + "\t",
    "trailing-nul": PASSWORD + "\x00",
    "byte-order-mark": "\ufeff" + PASSWORD,
    "upper-case": PASSWORD.upper(),
}


@pytest.mark.parametrize("password", NEAR_MISSES.values(), ids=NEAR_MISSES.keys())
def test_passwords_are_neither_trimmed_nor_normalised(kit, password):
    """A password differing from the real one by whitespace, NUL or case is wrong."""
    before = kit.service.snapshot()

    failure = kit.sign_in_refused(email="alice@example.com", password=password)

    assert (failure.code, failure.reason) == (UNAUTHENTICATED, "INVALID_CREDENTIALS")
    assert kit.service.snapshot() == before


@pytest.mark.parametrize("prefix", [72, 1023], ids=["bcrypt-72", "all-but-one"])
def test_long_passwords_are_not_truncated(kit, prefix):
    """Only the whole of a long password signs in: a prefix of it is wrong (no bcrypt-style
    truncation at 72 bytes, nor anywhere else)."""
    password = "".join(chr(0x41 + i % 26) for i in range(1024))
    email = f"long-{prefix}@example.com"
    kit.service.run(kit.service.app.accounts.add("email", email, password))
    before = kit.service.snapshot()

    failure = kit.sign_in_refused(email=email, password=password[:prefix])

    assert (failure.code, failure.reason) == (UNAUTHENTICATED, "INVALID_CREDENTIALS")
    assert kit.service.snapshot() == before


CORRUPT_HASHES = {
    "garbage": lambda good: "garbage",
    "empty": lambda good: "",
    "truncated": lambda good: good[:-10],
    "bit-flipped-digest": lambda good: good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1],
    "bcrypt-format": lambda good: "$2b$12$" + "a" * 53,
    "argon2-zero-parallelism": lambda good: "$argon2id$v=19$m=65536,t=2,p=0$c2FsdHNhbHQ$aGFzaA",
    "argon2-unknown-version": lambda good: good.replace("v=19", "v=99"),
    "plaintext-password": lambda good: PASSWORD,
}


@pytest.mark.parametrize("corrupt", CORRUPT_HASHES.values(), ids=CORRUPT_HASHES.keys())
def test_corrupt_stored_hash_is_invalid_credentials(kit, corrupt):
    """A damaged hash in the users table answers INVALID_CREDENTIALS (never INTERNAL) and
    creates no session, even for the right password."""
    email = f"corrupt-{uuid.uuid4().hex[:8]}@example.com"
    user_id = kit.service.run(kit.service.app.accounts.add("email", email, PASSWORD))
    good = kit.fetchval("SELECT password_hash FROM users WHERE id = $1::text::uuid", user_id)
    kit.fetchval("UPDATE users SET password_hash = $2 WHERE id = $1::text::uuid", user_id,
                 corrupt(good))
    before = kit.service.snapshot()

    failure = kit.sign_in_refused(email=email, password=PASSWORD)

    assert (failure.code, failure.reason) == (UNAUTHENTICATED, "INVALID_CREDENTIALS")
    assert kit.service.snapshot() == before


