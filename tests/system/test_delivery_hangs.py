"""A graceful stop is never held by a receiver: ``authsvc serve`` as a process, its
outbox sending to a misbehaving receiver (a webhook that never answers or answers
one byte every few seconds, a mail server that never greets or hangs mid-DATA),
exits 0 within AUTHSVC_SHUTDOWN_GRACE + 1 s of SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import signal
import time
from collections.abc import Callable

import asyncpg
import grpc
import pytest

from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, eventually
from ..receivers import DrippingWebhook, HangingMailbox, Mailbox, SilentServer, WebhookReceiver
from ..servers import AuthsvcProcess, free_port, new_key, server_env

GRACE = 3.0
WAIT = 60.0

# A whsec_ secret for receivers that check no signature.
UNCHECKED_SECRET = "whsec_" + base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("misbehaving", ["webhook-silent", "webhook-dripping",
                                         "smtp-no-greeting", "smtp-mid-data"])
async def test_sigterm_stops_within_the_grace_while_a_receiver_hangs(
        database_url, misbehaving, workers):
    """With a send hung on a misbehaving receiver (and the other channel healthy),
    SIGTERM ends the server, exit code 0, within the grace period and a second."""
    webhook: WebhookReceiver | SilentServer | DrippingWebhook
    mailbox: Mailbox | SilentServer
    in_progress: Callable[[], bool]
    if misbehaving.startswith("webhook"):
        webhook = SilentServer() if misbehaving == "webhook-silent" else DrippingWebhook(2.0)
        mailbox = Mailbox()
        secret = UNCHECKED_SECRET
    else:
        webhook = WebhookReceiver()
        mailbox = SilentServer() if misbehaving == "smtp-no-greeting" else HangingMailbox()
        secret = webhook.secret
    in_progress = {
        "webhook-silent": lambda: webhook.connections >= 1,  # type: ignore[union-attr]
        "webhook-dripping": lambda: webhook.requests >= 1,  # type: ignore[union-attr]
        "smtp-no-greeting": lambda: mailbox.connections >= 1,  # type: ignore[union-attr]
        "smtp-mid-data": lambda: mailbox.in_data >= 1,  # type: ignore[union-attr]
    }[misbehaving]
    smtp_url = mailbox.smtp_url if isinstance(mailbox, SilentServer) else mailbox.url
    env = server_env(AUTHSVC_DATABASE_URL=database_url, AUTHSVC_KEY_ENCRYPTION_KEY=new_key(),
                     AUTHSVC_SHUTDOWN_GRACE=str(GRACE), AUTHSVC_SIGNUP="verify",
                     AUTHSVC_SMTP_URL=smtp_url, AUTHSVC_SMTP_FROM="authsvc@example.com",
                     AUTHSVC_WEBHOOK_URL=webhook.url, AUTHSVC_WEBHOOK_SECRET=secret)
    server = AuthsvcProcess(free_port(), env, ["--workers", str(workers)])
    webhook.start()
    mailbox.start()
    try:
        server.start().wait_ready()
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = auth_pb2_grpc.AuthStub(channel)
            await stub.SignUp(auth_pb2.SignUpRequest(phone="+14155550123", password=PASSWORD),
                              timeout=WAIT)
            await stub.SignUp(auth_pb2.SignUpRequest(email="ann@example.com",
                                                     password=PASSWORD), timeout=WAIT)
        await eventually(in_progress, WAIT, f"a send to the {misbehaving} receiver")

        server.signal(signal.SIGTERM)
        signalled = time.monotonic()
        exit_code = await asyncio.to_thread(server.wait, WAIT)
        took = time.monotonic() - signalled
    finally:
        server.stop()
        webhook.stop()
        mailbox.stop()

    assert exit_code == 0, server.log
    # An upper bound (a deadline), not a benchmark: how fast depends on the machine.
    assert took < GRACE + 1, f"stopping took {took:.1f} s:\n{server.log}"
    assert "background task did not stop" not in server.log


async def test_a_killed_workers_claim_runs_out_within_the_short_lease(database_url):
    """SIGKILL during a hung webhook send leaves a claim that runs out within
    AUTHSVC_OUTBOX_LEASE (30 s by the database's clock), not minutes later."""
    webhook = SilentServer().start()
    env = server_env(AUTHSVC_DATABASE_URL=database_url, AUTHSVC_KEY_ENCRYPTION_KEY=new_key(),
                     AUTHSVC_SIGNUP="verify", AUTHSVC_WEBHOOK_URL=webhook.url,
                     AUTHSVC_WEBHOOK_SECRET=UNCHECKED_SECRET)
    server = AuthsvcProcess(free_port(), env, ["--workers", "1"])
    try:
        server.start().wait_ready()
        async with grpc.aio.insecure_channel(server.address) as channel:
            await auth_pb2_grpc.AuthStub(channel).SignUp(
                auth_pb2.SignUpRequest(phone="+14155550123", password=PASSWORD), timeout=WAIT)
        await eventually(lambda: webhook.connections >= 1, WAIT, "the send that hangs")
        server.signal(signal.SIGKILL)
        await asyncio.to_thread(server.wait, WAIT)
        conn = await asyncpg.connect(database_url)
        try:
            left = await conn.fetchval("SELECT extract(epoch FROM leased_until - now())::float8"
                                       " FROM outbox WHERE sent_at IS NULL")
        finally:
            await conn.close()
    finally:
        server.stop()
        webhook.stop()

    assert left is not None and 0 < left <= 30.0, left
