"""Specification of the outbox and its delivery: messages are written in
the transaction of the change that causes them and sent by the server's delivery
loop to a real SMTP server (aiosmtpd) or a real HTTP receiver that checks the
Standard Webhooks signature. Outages delay messages and lose none."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from authsvc.config import Secret, Settings, encode_key, webhook_secret
from authsvc.domain.accounts.identifiers import Identifier
from authsvc.domain.delivery.outbox import Delivery
from authsvc.runtime.app import App, delivery_channels
from authsvc.v1 import auth_pb2

from ..helpers import PASSWORD, authsvc, eventually
from ..receivers import Mailbox, WebhookReceiver

WAIT = 60.0


@pytest.fixture
def settings(settings: Settings, mailbox: Mailbox, receiver: WebhookReceiver) -> Settings:
    """Verify-mode sign-up; email by SMTP to ``mailbox``, phone numbers to ``receiver``;
    retries after 0.05 s doubling to 0.5 s."""
    return dataclasses.replace(
        settings, signup="verify", smtp_url=Secret(mailbox.url),
        smtp_from="authsvc@example.com", webhook_url=receiver.url,
        webhook_secret=webhook_secret(receiver.secret),
        outbox_retry_base=0.05, outbox_retry_max=0.5)


async def _outbox(app: App) -> list[dict[str, object]]:
    async with app.db.connection() as conn:
        rows = await conn.fetch("SELECT id, kind, recipient, attempts, sent_at IS NOT NULL AS"
                                " sent, payload IS NULL AS wiped, last_error FROM outbox"
                                " ORDER BY id")
    return [dict(r) for r in rows]


async def _every_row(app: App, holds: Callable[[dict[str, Any]], bool]) -> bool:
    """Whether the outbox has rows and ``holds`` for each."""
    rows = await _outbox(app)
    return bool(rows) and all(holds(r) for r in rows)


async def test_mail_waits_while_the_smtp_server_is_down_and_is_delivered_once(
        stub, mailbox, app, clock):
    """With the SMTP server down, sign-ups succeed and their messages wait (retried);
    once it is back (and the receiver's breaker lets it be tried again) each is
    delivered exactly once, and its code wiped."""
    mailbox.stop()
    people = [f"p{i}@example.com" for i in range(3)]
    for email in people:
        await stub.SignUp(auth_pb2.SignUpRequest(email=email, password=PASSWORD))
    async def failed_and_retried() -> bool:
        clock.advance(0.5)  # past any pause of the mail server's breaker (at most 0.5 s)
        rows = await _outbox(app)
        return bool(rows) and all(r["last_error"] for r in rows) \
            and any(r["attempts"] >= 2 for r in rows)

    async def all_sent() -> bool:
        clock.advance(0.5)
        return all(r["sent"] for r in await _outbox(app))

    await eventually(failed_and_retried, WAIT, "every message to fail, one twice",
                     interval=0.05)
    waiting = await _outbox(app)

    mailbox.start()
    await eventually(all_sent, WAIT, "every message to be marked sent", interval=0.05)
    again = await app.delivery.deliver_due()

    assert [(r["recipient"], r["sent"], r["last_error"]) for r in waiting] == [
        (email, False, "SMTPConnectError") for email in people]
    assert sorted(m["To"] for m in mailbox.received()) == people
    assert again == 0
    assert all(r["wiped"] for r in await _outbox(app))


async def test_a_transaction_that_rolls_back_leaves_no_message(app, mailbox):
    """A message is written in its change's transaction: a rollback takes it away."""
    class Abandoned(Exception):
        pass

    with pytest.raises(Abandoned):
        async with app.db.transaction() as conn:
            await app.messages.send(conn, "verify", Identifier("email", "x@example.com"),
                                    code="12345678")
            raise Abandoned
    app.messages.written()
    sent = await app.delivery.deliver_due()

    assert (await _outbox(app), sent, mailbox.received()) == ([], 0, [])


async def test_concurrent_senders_deliver_each_message_once(app, mailbox, settings):
    """Many senders at once (the app's loop and four more, as other workers or replicas
    would run) claim with SKIP LOCKED: forty messages arrive forty times."""
    recipients = [f"r{i}@example.com" for i in range(40)]
    async with app.db.transaction() as conn:
        for to in recipients:
            await app.messages.send(conn, "verify", Identifier("email", to), code="12345678")
    others = [Delivery(app.db, app.messages, delivery_channels(settings, app.clock),
                       retry_base=1, retry_max=1, max_attempts=3, batch=3)
              for _ in range(4)]
    app.messages.written()

    await asyncio.gather(*(d.deliver_due() for d in others for _ in range(4)))
    for to in recipients:
        await mailbox.wait_for(to)
    await eventually(lambda: len(mailbox.received()) >= 40, WAIT, "forty messages")
    await asyncio.gather(*(d.deliver_due() for d in others))

    assert sorted(m["To"] for m in mailbox.received()) == sorted(recipients)
    assert len({m["Message-ID"] for m in mailbox.received()}) == 40


async def test_phone_codes_go_to_the_webhook_signed_per_standard_webhooks(stub, receiver,
                                                                         app):
    """A phone sign-up's code is POSTed as a JSON event whose signature the reference
    library accepts; the code in it verifies the phone."""
    await stub.SignUp(auth_pb2.SignUpRequest(phone="+1 415 555 0123", password=PASSWORD))
    [event] = await receiver.wait_for("+14155550123")

    await stub.VerifyIdentifier(auth_pb2.VerifyIdentifierRequest(phone="+14155550123",
                                                                 code=event["data"]["code"]))
    tokens = await stub.SignIn(auth_pb2.SignInRequest(phone="+14155550123",
                                                      password=PASSWORD))

    assert event["type"] == "authsvc.message.verify"
    assert (event["data"]["channel"], event["data"]["kind"]) == ("phone", "verify")
    assert event["data"]["code"] in event["data"]["text"]
    assert receiver.bad_signatures == 0
    assert tokens.access_token


async def test_a_failing_webhook_is_retried_until_it_answers(stub, receiver, app):
    """A receiver answering 503 gets the event again later, once it answers 2xx, with
    the same webhook-id; nothing is lost."""
    receiver.failing = True
    await stub.SignUp(auth_pb2.SignUpRequest(phone="+14155550199", password=PASSWORD))
    await eventually(lambda: _every_row(app, lambda r: r["attempts"] >= 2), WAIT,
                     "the event to be tried twice", interval=0.05)
    rows = await _outbox(app)

    receiver.failing = False
    [event] = await receiver.wait_for("+14155550199")

    assert rows[0]["last_error"] == "HTTPError 503"
    assert receiver.ids == [f"msg_authsvc_{rows[0]['id']}"]
    assert event["data"]["kind"] == "verify"


async def test_outbox_command_lists_pending_and_failed_messages_without_codes(
        stub, mailbox, app, database_url, settings):
    """`authsvc outbox` prints one JSON line per waiting or failed message: where it
    goes, its state and attempts, and never its content."""
    mailbox.stop()
    await stub.SignUp(auth_pb2.SignUpRequest(email="bob@example.com", password=PASSWORD))
    async with app.db.connection() as conn:  # one message gave up after its attempts
        await conn.execute("INSERT INTO outbox (kind, channel, recipient, payload, failed_at,"
                           " attempts, last_error) VALUES ('reset', 'email',"
                           " 'carol@example.com', '\\x00', now(), 30, 'SMTPConnectError')")

    assert settings.key_encryption_key is not None
    listed = authsvc(database_url, "outbox", env={
        "AUTHSVC_KEY_ENCRYPTION_KEY": encode_key(settings.key_encryption_key.reveal())})

    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert listed.returncode == 0, listed.stderr
    assert [(m["kind"], m["recipient"], m["state"]) for m in lines] == [
        ("verify", "bob@example.com", "pending"), ("reset", "carol@example.com", "failed")]
    assert "code" not in listed.stdout and "payload" not in listed.stdout


async def test_housekeeping_forgets_old_sent_messages_and_expired_codes(stub, mailbox, app):
    """Sent messages are kept a week, then pruned; expired codes are deleted; waiting
    messages and live codes stay."""
    for email in ("old@example.com", "new@example.com"):
        await stub.SignUp(auth_pb2.SignUpRequest(email=email, password=PASSWORD))
        await mailbox.wait_for(email)
    await eventually(lambda: len(mailbox.received()) == 2, WAIT, "two messages")
    await eventually(lambda: _every_row(app, lambda r: r["sent"]), WAIT,
                     "both messages to be marked sent", interval=0.05)
    async with app.db.connection() as conn:  # a week and a day pass for "old"
        await conn.execute("UPDATE outbox SET sent_at = now() - interval '8 days'"
                           " WHERE recipient = 'old@example.com'")
        await conn.execute("UPDATE account_codes c SET expires_at = now() - interval '1 s'"
                           " FROM users u WHERE u.id = c.user_id AND u.email = 'old@example.com'")

    pruned, forgotten = await app.delivery.prune(), await app.codes.forget_expired()

    async with app.db.connection() as conn:
        codes_left = await conn.fetchval("SELECT count(*) FROM account_codes")
    assert (pruned, forgotten, codes_left) == (1, 1, 1)
    assert [r["recipient"] for r in await _outbox(app)] == ["new@example.com"]


async def test_the_delivery_loop_stops_when_cancelled_as_it_is_woken(app):
    """A cancel (shutdown) that arrives together with a wake-up (a message just written)
    still ends the loop: it must not swallow the cancellation and deliver on forever."""
    loop = Delivery(app.db, app.messages, {}, retry_base=1, retry_max=1, max_attempts=1)
    task = asyncio.create_task(loop.run())
    for _ in range(10):  # let it reach its wait for a wake-up
        await asyncio.sleep(0)

    loop.wake()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=WAIT)

    assert done == {task} and task.cancelled()
