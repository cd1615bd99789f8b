"""Tools for the attack suite: forging JWTs, watching the database, a decoy listener.

Nothing here talks to authsvc through anything but what an attacker has: the
token it was given, the public keys from GetJwks, and keys of its own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import asyncpg
import grpc
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import get_default_algorithms

from authsvc.clock import FakeClock
from authsvc.config import Secret, Settings
from authsvc.runtime.app import App, running_app
from authsvc.runtime.server import running_server
from authsvc.v1 import auth_pb2_grpc

from ..conftest import with_database
from ..helpers import Failure, parse

T = TypeVar("T")

# Every table but auth_events (and throttling counters, which are the lead's
# promised side effect of failures): the state an attack must never change.
GUARDED_TABLES = {
    "users": "id",
    "sessions": "id",
    "refresh_tokens": "id",
    "signing_keys": "kid",
}
_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_THROTTLE_OFF = {
    "throttle_identifier_free": 1_000_000, "throttle_address_free": 1_000_000,
    "throttle_pair_free": 1_000_000, "throttle_refresh_free": 1_000_000,
}

Snapshot = dict[str, list[Any]]


def without_throttling(settings: Settings) -> Settings:
    """``settings`` with thresholds too high to reach, so attacks meet the real checks
    instead of the tarpit (which has its own tests), and no metrics listener."""
    known = {f.name for f in dataclasses.fields(settings)}
    changes: dict[str, Any] = {k: v for k, v in _THROTTLE_OFF.items() if k in known}
    if "metrics_listen" in known:
        changes["metrics_listen"] = None
    return dataclasses.replace(settings, **changes)


def attack_settings(database_url: str, **changes: Any) -> Settings:
    """The suite's usual test settings (as conftest makes them), without throttling."""
    base = Settings(database_url=Secret(database_url), key_encryption_key=Secret(os.urandom(32)),
                    argon2_profile="test-only-cheapest", hash_threads=2, workers=1,
                    listen="127.0.0.1:0", db_pool_size=20)
    return dataclasses.replace(without_throttling(base), **changes)


def refused(call: Callable[[], Any]) -> Failure:
    """Make a synchronous RPC that must fail; return what it said."""
    try:
        result = call()
    except grpc.RpcError as error:
        return parse(error)
    raise AssertionError(f"expected an error, got {result!r}")


class BackgroundService:
    """One authsvc worker on its own database and event loop, in a thread.

    For tests that are plain functions (hypothesis, and the forged-token
    catalogue, which shares one server because no case may change its
    state): they call it through a synchronous channel and run coroutines
    on its loop with ``run``.
    """

    def __init__(self, admin_url: str, template: str, **changes: Any) -> None:
        self._admin_url = admin_url
        self._template = template
        self._name = f"authsvc_bg_{uuid.uuid4().hex[:12]}"
        self.database_url = with_database(admin_url, self._name)
        self.settings = attack_settings(self.database_url, **changes)
        self.clock = FakeClock(start=float(int(time.time())))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="authsvc-bg",
                                        daemon=True)
        self._stack = contextlib.AsyncExitStack()
        self.app: App
        self.port: int
        self.channel: grpc.Channel
        self.stub: auth_pb2_grpc.AuthStub

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run ``coro`` on the service's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def snapshot(self, everything: bool = False) -> Snapshot:
        """The guarded tables (or, with ``everything``, all tables) as they are now."""
        async def take() -> Snapshot:
            async with self.app.db.connection() as conn:
                return await snapshot_with(conn, everything)

        return self.run(take())

    def __enter__(self) -> BackgroundService:
        self._thread.start()
        self.run(self._start())
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = auth_pb2_grpc.AuthStub(self.channel)
        return self

    def __exit__(self, *exc: object) -> None:
        self.channel.close()
        try:
            self.run(self._stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    async def _start(self) -> None:
        admin = await asyncpg.connect(self._admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{self._name}" TEMPLATE "{self._template}"')
        finally:
            await admin.close()
        self.app = await self._stack.enter_async_context(
            running_app(self.settings, self.database_url, self.clock))
        _server, self.port = await self._stack.enter_async_context(
            running_server(self.app, "127.0.0.1:0"))

    async def _stop(self) -> None:
        await self._stack.aclose()
        admin = await asyncpg.connect(self._admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')
        finally:
            await admin.close()


async def snapshot(database_url: str) -> Snapshot:
    """Every row of every guarded table, in primary-key order."""
    conn = await asyncpg.connect(database_url)
    try:
        return await snapshot_with(conn)
    finally:
        await conn.close()


async def snapshot_with(conn: asyncpg.Connection, everything: bool = False) -> Snapshot:
    """The guarded tables' rows; with ``everything``, every table's (audit log and
    throttling counters included, rows as sorted text), for calls that promise to
    change nothing at all."""
    if not everything:
        return {table: [tuple(r.values()) for r in
                        await conn.fetch(f"SELECT * FROM {table} ORDER BY {key}")]  # noqa: S608
                for table, key in GUARDED_TABLES.items()}
    names = await conn.fetch("SELECT table_name FROM information_schema.tables"
                             " WHERE table_schema = 'public' ORDER BY table_name")
    return {r["table_name"]: sorted(repr(tuple(row.values())) for row in await conn.fetch(
                f'SELECT * FROM "{r["table_name"]}"'))  # noqa: S608
            for r in names}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def encode_json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


@dataclasses.dataclass(frozen=True)
class Parts:
    """A compact JWS taken apart: header and payload decoded, signature as text."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signature: str

    @classmethod
    def of(cls, token: str) -> Parts:
        header, payload, signature = token.split(".")
        return cls(json.loads(unb64(header)), json.loads(unb64(payload)), signature)

    def with_header(self, **changes: Any) -> Parts:
        return dataclasses.replace(self, header=_changed(self.header, changes))

    def with_claims(self, **changes: Any) -> Parts:
        return dataclasses.replace(self, payload=_changed(self.payload, changes))

    def signing_input(self) -> str:
        return f"{encode_json(self.header)}.{encode_json(self.payload)}"

    def compact(self, signature: str | None = None) -> str:
        """The token, with this signature (default: the one it came with)."""
        return f"{self.signing_input()}.{self.signature if signature is None else signature}"

    def hmac_signed(self, alg: str, secret: bytes) -> str:
        """Re-signed as ``alg`` (HS256/384/512) with ``secret``; header alg set to match."""
        parts = self.with_header(alg=alg)
        mac = hmac.new(secret, parts.signing_input().encode(), _HASHES[alg]).digest()
        return parts.compact(b64(mac))

    def signed(self, alg: str, private_key: Any) -> str:
        """Signed as ``alg`` with ``private_key``, header and claims exactly as they are
        (whatever their types: nothing here validates them) and header alg set to ``alg``."""
        parts = self.with_header(alg=alg)
        signature = get_default_algorithms()[alg].sign(parts.signing_input().encode(),
                                                        private_key)
        return parts.compact(b64(signature))


def _changed(values: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``values`` with ``changes`` applied; a value of ``DELETE`` removes the member."""
    result = dict(values)
    for name, value in changes.items():
        if value is DELETE:
            result.pop(name, None)
        else:
            result[name] = value
    return result


DELETE = object()


def public_key_encodings(public_key: Any, jwk: dict[str, str]) -> dict[str, bytes]:
    """The ways an attacker might feed our public key to HMAC (key confusion)."""
    pem = public_key.public_bytes(serialization.Encoding.PEM,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "pem": pem,
        "pem-no-newline": pem.rstrip(b"\n"),
        "jwk-json": json.dumps(jwk).encode(),
        # CVE-2022-29217: pyjwt < 2.4 took an OpenSSH public key as an HMAC secret.
        "openssh": public_key.public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH),
        "der": public_key.public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo),
    }


class DecoyListener:
    """A TCP listener on 127.0.0.1 that counts every connection made to it.

    It answers any request with an attacker's JWKS, so a service that did
    fetch ``jku``/``x5u`` would get a key that verifies the forged token.
    """

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(8)
        self._socket.settimeout(0.05)
        self.port = self._socket.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="decoy", daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> DecoyListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                                 % (len(self._body), self._body))
                except OSError:
                    pass
