"""An imported user's wrong password costs what an unknown user's does, and more:
counted, not timed.

Unknown, native, imported-bcrypt and imported-pbkdf2 users answer a wrong password
with the same refusal after the same statements and exactly one argon2
verification with the dummy's (or the stored hash's) parameters; an imported user
adds its scheme's check on top, never replaces the argon2 work, so it never
answers sooner than an unknown one. (What a stopwatch sees is for the benchmark.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import argon2
import bcrypt
import grpc
import pytest

from authsvc.domain.accounts import foreign_hashes
from authsvc.runtime.app import App, running_app
from authsvc.runtime.server import running_server
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, fails
from ..rpc.test_statement_budget import Ledger


@dataclass
class Calls:
    """Every argon2 verification (its parameters) and foreign check the server ran."""

    argon2: list[argon2.Parameters] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)  # the hashing threads

    def taken(self) -> tuple[list[argon2.Parameters], list[str]]:
        with self.lock:
            taken = (self.argon2, self.foreign)
            self.argon2, self.foreign = [], []
        return taken


@pytest.fixture
async def counted(settings, database_url, clock, monkeypatch) -> AsyncIterator[
        tuple[App, auth_pb2_grpc.AuthStub, Ledger, Calls]]:
    """A server whose statements, argon2 verifications and bcrypt/PBKDF2 checks are
    recorded; alice is native, ada imported with bcrypt, bob with PBKDF2-SHA256."""
    calls, ledger = Calls(), Ledger()
    verify = argon2.PasswordHasher.verify

    def counting_verify(self: argon2.PasswordHasher, stored: str | bytes,
                        password: str | bytes) -> bool:
        with calls.lock:
            calls.argon2.append(argon2.extract_parameters(
                stored if isinstance(stored, str) else stored.decode()))
        return verify(self, stored, password)

    def counted_as(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            with calls.lock:
                calls.foreign.append(name)
            return fn(*args, **kwargs)
        return run

    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting_verify)
    monkeypatch.setattr(foreign_hashes.bcrypt, "checkpw",
                        counted_as("bcrypt", bcrypt.checkpw))
    monkeypatch.setattr(foreign_hashes.hashlib, "pbkdf2_hmac",
                        counted_as("pbkdf2", hashlib.pbkdf2_hmac))
    async with running_app(settings, database_url, clock, listen_for_revocations=False,
                           connection_init=ledger.attach) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await app.accounts.add("email", "alice@example.com", PASSWORD)
        salt = b"0123456789abcdef"
        await app.user_import.run([json.dumps(line) for line in (
            {"external_id": "src:ada", "email": "ada@example.com", "password": {
                "scheme": "bcrypt", "hash": bcrypt.hashpw(PASSWORD.encode(),
                                                          bcrypt.gensalt(4)).decode()}},
            {"external_id": "src:bob", "email": "bob@example.com", "password": {
                "scheme": "pbkdf2", "digest": "sha256", "iterations": 1000,
                "salt": base64.b64encode(salt).decode(),
                "hash": base64.b64encode(hashlib.pbkdf2_hmac(
                    "sha256", PASSWORD.encode(), salt, 1000)).decode()}})])
        yield app, auth_pb2_grpc.AuthStub(channel), ledger, calls


async def _wrong_password(stub: auth_pb2_grpc.AuthStub, ledger: Ledger, calls: Calls,
                          email: str) -> tuple[object, list[str], list[Any], list[str]]:
    ledger.taken()
    calls.taken()
    failure = await fails(stub.SignIn(auth_pb2.SignInRequest(email=email,
                                                             password="not the password")))
    argon2_calls, foreign_calls = calls.taken()
    return (failure.code, failure.reason), ledger.taken(), argon2_calls, foreign_calls


async def test_a_wrong_password_costs_an_imported_user_the_unknown_users_work_and_more(
        counted):
    """Same refusal, same statements, one argon2 verification with the same parameters
    for all four; only the imported users add their scheme's one check."""
    app, stub, ledger, calls = counted
    await _wrong_password(stub, ledger, calls, "warm@example.com")  # statement caches

    unknown = await _wrong_password(stub, ledger, calls, "nobody@example.com")
    native = await _wrong_password(stub, ledger, calls, "alice@example.com")
    imported_bcrypt = await _wrong_password(stub, ledger, calls, "ada@example.com")
    imported_pbkdf2 = await _wrong_password(stub, ledger, calls, "bob@example.com")

    dummy = [app.passwords.dummy_parameters]
    assert unknown[0] == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
    assert native[0] == imported_bcrypt[0] == imported_pbkdf2[0] == unknown[0]
    assert native[1] == imported_bcrypt[1] == imported_pbkdf2[1] == unknown[1]
    assert (unknown[2], native[2], imported_bcrypt[2], imported_pbkdf2[2]) == (
        dummy, dummy, dummy, dummy)
    assert (unknown[3], native[3], imported_bcrypt[3], imported_pbkdf2[3]) == (
        [], [], ["bcrypt"], ["pbkdf2"])


async def test_while_most_users_are_imported_an_unknown_user_costs_what_they_cost(counted):
    """With bcrypt the most common stored hash, the calibrated dummy makes an unknown
    user's wrong password run a bcrypt check too (then the same argon2 dummy), as an
    imported bcrypt user's does."""
    app, stub, ledger, calls = counted
    await app.user_import.run([json.dumps({
        "external_id": f"src:more{i}", "email": f"more{i}@example.com",
        "password": {"scheme": "bcrypt", "hash": bcrypt.hashpw(b"x", bcrypt.gensalt(4)
                                                               ).decode()}})
        for i in range(2)])
    await _wrong_password(stub, ledger, calls, "warm@example.com")

    await app.calibrate_dummy_hash()
    unknown = await _wrong_password(stub, ledger, calls, "nobody@example.com")
    imported = await _wrong_password(stub, ledger, calls, "ada@example.com")
    native = await _wrong_password(stub, ledger, calls, "alice@example.com")

    dummy = [app.passwords.dummy_parameters]
    assert unknown[1] == imported[1] == native[1]
    assert (unknown[2], unknown[3]) == (dummy, ["bcrypt"])
    assert (imported[2], imported[3]) == (dummy, ["bcrypt"])
    assert (native[2], native[3]) == (dummy, [])  # the few: fastest, as after a profile change
