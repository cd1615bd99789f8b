"""Credentials under attack: sign-in answers that give nothing away (not even by their
timing), passwords taken exactly as given, and stored hashes that are damaged.

The kit cases share one server per module; the timing case starts its own with
production argon2 parameters.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
import uuid

import grpc
import pytest

from authsvc.runtime.app import running_app
from authsvc.runtime.server import running_server
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, fails
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


async def test_unknown_user_and_wrong_password_take_the_same_time(settings, database_url, clock):
    """With production argon2 parameters, the median time of a sign-in for an unknown
    user and for a wrong password are within a factor of two of each other."""
    real = dataclasses.replace(settings, argon2_profile="owasp", hash_threads=1)
    async with running_app(real, database_url, clock) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = auth_pb2_grpc.AuthStub(channel)
        await app.accounts.add("email", "alice@example.com", PASSWORD)
        await app.accounts.disable(await app.accounts.add("email", "carol@example.com",
                                                          PASSWORD))
        attempts = {"unknown": ("nobody@example.com", PASSWORD),
                    "wrong": ("alice@example.com", "wrong password"),
                    "disabled": ("carol@example.com", PASSWORD)}
        times: dict[str, list[float]] = {name: [] for name in attempts}
        await fails(stub.SignIn(auth_pb2.SignInRequest(email="warm@example.com",
                                                       password=PASSWORD)))

        for _ in range(15):  # interleaved, so drift in machine load hits all alike
            for name, (email, password) in attempts.items():
                started = time.perf_counter()
                await fails(stub.SignIn(auth_pb2.SignInRequest(email=email, password=password)))
                times[name].append(time.perf_counter() - started)

    medians = {name: statistics.median(values) for name, values in times.items()}
    for name in ("unknown", "disabled"):
        assert 0.5 < medians[name] / medians["wrong"] < 2.0, medians


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


