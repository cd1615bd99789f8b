"""The audit trail: every security event is a row, and no secret is ever written."""

from __future__ import annotations

import dataclasses
import logging

import grpc

from authsvc.runtime.app import running_app
from authsvc.runtime.server import running_server
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, fails, sign_in, travel


async def test_flows_leave_events_and_no_secret_reaches_events_or_logs(
        settings, database_url, clock, caplog):
    """Sign-in, failure, throttle, refresh, reuse, revoke, user and key changes are all
    audited with who, when and from where; no password, token or hash is in any of it."""
    caplog.set_level(logging.DEBUG)
    tight = dataclasses.replace(settings, throttle_pair_free=1)
    async with running_app(tight, database_url, clock) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = auth_pb2_grpc.AuthStub(channel)
        user_id = await app.accounts.add("email", "alice@example.com", PASSWORD)
        first = await sign_in(stub)
        second = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=first.refresh_token))
        await travel(database_url, 60, clock)
        await fails(stub.Refresh(auth_pb2.RefreshRequest(refresh_token=first.refresh_token)))
        third = await sign_in(stub)
        await stub.Revoke(auth_pb2.RevokeRequest(token=third.access_token))
        await fails(sign_in(stub, password="wrong password 1"))
        await fails(sign_in(stub, password="wrong password 2"))
        throttled = await fails(sign_in(stub, password="wrong password 3"))
        await app.accounts.set_password(user_id, "a brand new password")
        await app.accounts.disable(user_id)
        await app.keystore.rotate()
        async with app.db.connection() as conn:
            events = await conn.fetch("SELECT * FROM auth_events ORDER BY id")
            hashes = [r["password_hash"] for r in await conn.fetch(
                "SELECT password_hash FROM users")]
            token_hashes = [bytes(r["token_hash"]).hex() for r in await conn.fetch(
                "SELECT token_hash FROM refresh_tokens")]

    assert throttled.reason == "RATE_LIMITED"
    kinds = {e["kind"] for e in events}
    assert kinds >= {"user.created", "signin.success", "refresh.success",
                     "refresh.reuse_detected", "session.revoked", "signin.failure",
                     "signin.throttled", "user.password_changed", "user.disabled",
                     "key.created", "key.rotated"}
    for event in events:
        if event["kind"].startswith(("signin.", "refresh.")):
            assert event["client_addr"] == "127.0.0.1"
            assert event["user_agent"].startswith("grpc-python")
            assert event["at"] is not None
    success = next(e for e in events if e["kind"] == "signin.success")
    assert (str(success["user_id"]), str(success["session_id"])) == (user_id, first.session_id)
    secrets = [PASSWORD, "wrong password 1", "a brand new password", first.access_token,
               first.refresh_token, second.access_token, second.refresh_token,
               third.access_token, third.refresh_token, *hashes, *token_hashes]
    written = str([dict(e) for e in events]) + caplog.text
    for secret in secrets:
        assert secret not in written
