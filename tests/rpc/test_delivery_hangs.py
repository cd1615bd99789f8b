"""Delivery that one slow receiver cannot stall: each send is bounded by one deadline,
receivers do not wait for each other, a failing receiver is left alone for a while
(its circuit breaker, on an injected clock), a stop ends sends at once, and claims
are short leases renewed while a send goes on (by the database's clock).

Real receivers throughout (tests/receivers.py): aiosmtpd, an HTTP server checking
Standard Webhooks signatures, a server that accepts and never answers, a webhook
that answers one byte every few seconds, a mail server that hangs mid-DATA. The
app under test has no channels of its own; each test runs its own ``Delivery``."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import logging
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authsvc.clock import FakeClock
from authsvc.config import webhook_secret
from authsvc.domain.accounts.identifiers import Identifier
from authsvc.domain.delivery.outbox import Channel, Delivery
from authsvc.runtime.app import App
from authsvc.runtime.senders import SmtpChannel, WebhookChannel

from ..helpers import eventually
from ..receivers import (
    DrippingWebhook,
    HangingMailbox,
    SilentServer,
    WebhookReceiver,
)

WAIT = 60.0
PHONE = "+14155550123"
EMAIL = "ann@example.com"
CODE = "12345678"
# Any whsec_ secret: the misbehaving receivers ignore it.
SECRET = "whsec_" + base64.b64encode(bytes(32)).decode()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer().start()
    yield server
    server.stop()


@pytest.fixture
def dripping() -> Iterator[DrippingWebhook]:
    server = DrippingWebhook(interval=0.5).start()
    yield server
    server.stop()


@pytest.fixture
def hanging_mailbox() -> Iterator[HangingMailbox]:
    box = HangingMailbox()
    box.start()
    yield box
    box.stop()


def smtp(url: str) -> SmtpChannel:
    return SmtpChannel(url, "authsvc@example.com", timeout=WAIT)


def webhook(url: str, secret: str = SECRET) -> WebhookChannel:
    return WebhookChannel(url, webhook_secret(secret).reveal(), time.time)


def delivery(app: App, channels: dict[str, Channel], **options: object) -> Delivery:
    """A delivery loop over ``channels``; retries due again at once (0.01 s)."""
    settings: dict[str, object] = {"retry_base": 0.01, "retry_max": 0.01, "max_attempts": 30,
                                   "send_timeout": WAIT}
    return Delivery(app.db, app.messages, channels, **{**settings, **options})


async def queue(app: App, *recipients: Identifier) -> None:
    async with app.db.transaction() as conn:
        for to in recipients:
            await app.messages.send(conn, "verify", to, code=CODE)


async def rows(app: App) -> dict[str, dict[str, object]]:
    """The outbox by recipient: attempts, sent, last error, seconds left of the lease
    by the database's clock, and whether it is due now.

    The lease left is counted from the moment the row is read (``clock_timestamp()``):
    this statement's ``now()`` can be a fraction of a millisecond older than that of a
    renewal its snapshot already sees, which would count more than a whole lease."""
    async with app.db.connection() as conn:
        found = await conn.fetch(
            "SELECT recipient, attempts, sent_at IS NOT NULL AS sent, last_error,"
            " extract(epoch FROM leased_until - clock_timestamp())::float8 AS lease_left,"
            " next_attempt_at <= now() AS due FROM outbox ORDER BY id")
    return {r["recipient"]: dict(r) for r in found}


async def all_due(app: App) -> None:
    """Wait until every waiting message is due again (the retry delay is 0.01 s)."""
    deadline = time.monotonic() + WAIT
    while not all(r["due"] or r["sent"] for r in (await rows(app)).values()):
        assert time.monotonic() < deadline, await rows(app)
        await asyncio.sleep(0.01)


async def test_a_webhook_that_answers_a_byte_at_a_time_fails_at_the_send_deadline(
        app, dripping, caplog):
    """A receiver sending one byte every half second (no read ever times out) holds a
    send no longer than the deadline: then "message not delivered" is logged, without
    the code or the secret, and the message waits for its retry."""
    caplog.set_level(logging.WARNING, logger="authsvc.domain.delivery.outbox")
    sender = delivery(app, {"phone": webhook(dripping.url)}, send_timeout=2.0)
    await queue(app, Identifier("phone", PHONE))

    started = time.monotonic()
    claimed = await sender.deliver_due()
    took = time.monotonic() - started

    [record] = [r for r in caplog.records if r.getMessage().startswith("message not delivered")]
    fields = record.fields
    row = (await rows(app))[PHONE]
    assert (claimed, dripping.requests) == (1, 1)
    assert took < 2.0 + 5.0, "the deadline bounds the whole send"  # slack for a busy machine
    assert (row["sent"], row["attempts"], row["last_error"]) == (False, 1, "TimeoutError")
    assert fields["error"] == "TimeoutError" and fields["receiver"] == f"http://127.0.0.1:{dripping.port}"
    assert CODE not in repr(fields) and "whsec" not in repr(fields)


async def test_mail_goes_out_while_the_webhook_hangs(app, mailbox, silent):
    """A webhook that never answers holds its own send only: mail queued while that
    send is under way (the receiver holds its connection) is delivered."""
    sender = delivery(app, {"email": smtp(mailbox.url), "phone": webhook(silent.url)})
    await queue(app, Identifier("phone", PHONE))
    task = asyncio.create_task(sender.run())
    try:
        await eventually(lambda: silent.connections == 1, WAIT, "the webhook send under way")
        await queue(app, Identifier("email", EMAIL))
        await eventually(lambda: _sent(app, EMAIL), WAIT, "the mail delivered")
        outbox = await rows(app)
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=WAIT)

    assert silent.connections == 1
    assert len(mailbox.received(EMAIL)) == 1
    assert (outbox[PHONE]["sent"], outbox[PHONE]["last_error"]) == (False, None)


async def _sent(app: App, recipient: str) -> bool:
    return bool((await rows(app)).get(recipient, {}).get("sent"))


async def test_phone_messages_go_out_while_the_mail_server_hangs_mid_data(
        app, hanging_mailbox, receiver):
    """A mail server that hangs after the message text holds mail only: a phone
    message queued while the mail send is under way (the server holds it in DATA)
    reaches the webhook."""
    sender = delivery(app, {"email": smtp(hanging_mailbox.url),
                            "phone": webhook(receiver.url, receiver.secret)})
    await queue(app, Identifier("email", EMAIL))
    task = asyncio.create_task(sender.run())
    try:
        await eventually(lambda: hanging_mailbox.in_data == 1, WAIT,
                         "the mail send held in DATA")
        await queue(app, Identifier("phone", PHONE))
        await eventually(lambda: _sent(app, PHONE), WAIT, "the phone message delivered")
        outbox = await rows(app)
        [event] = receiver.to(PHONE)
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=WAIT)

    assert hanging_mailbox.in_data == 1
    assert event["data"]["code"] == CODE
    assert (outbox[EMAIL]["sent"], outbox[EMAIL]["last_error"]) == (False, None)


@pytest.mark.parametrize("misbehaving", ["smtp-mid-data", "smtp-no-greeting",
                                         "webhook-silent", "webhook-dripping"])
async def test_a_stop_ends_a_hung_send_at_once_and_gives_its_claim_back(
        app, misbehaving, hanging_mailbox, silent, dripping):
    """Cancelling the delivery loop (a worker stopping) while a send hangs ends it at
    once (an SMTP connection is dropped without waiting for QUIT), and the message is
    due again for another worker."""
    channel, to, in_progress = {
        "smtp-mid-data": (smtp(hanging_mailbox.url), Identifier("email", EMAIL),
                          lambda: hanging_mailbox.in_data == 1),
        "smtp-no-greeting": (smtp(silent.smtp_url), Identifier("email", EMAIL),
                             lambda: silent.connections == 1),
        "webhook-silent": (webhook(silent.url), Identifier("phone", PHONE),
                           lambda: silent.connections == 1),
        "webhook-dripping": (webhook(dripping.url), Identifier("phone", PHONE),
                             lambda: dripping.requests == 1),
    }[misbehaving]
    sender = delivery(app, {to.kind: channel})
    await queue(app, to)
    task = asyncio.create_task(sender.run())
    await eventually(in_progress, WAIT, f"a send to the {misbehaving} receiver")

    task.cancel()
    started = time.monotonic()
    done, _ = await asyncio.wait({task}, timeout=WAIT)
    took = time.monotonic() - started

    row = (await rows(app))[to.value]
    assert done == {task} and task.cancelled()
    assert took < 5.0, f"stopping took {took:.1f} s"  # a bound (30 s before), not a benchmark
    assert (row["sent"], row["lease_left"], row["due"]) == (False, None, True)


async def test_a_failing_receiver_is_left_alone_for_a_while_and_loses_nothing(
        app, receiver, mailbox):
    """After three failures in a row the webhook's messages wait without being tried
    (mail still flows); once the pause is over one message probes it, a failed probe
    doubles the pause, and a good one sends everything that waited."""
    clock = FakeClock()
    sender = delivery(app, {"email": smtp(mailbox.url),
                            "phone": webhook(receiver.url, receiver.secret)},
                      clock=clock, breaker_threshold=3, retry_base=0.01, retry_max=1.0)
    phones = [f"+1415555010{i}" for i in range(4)]
    receiver.failing = True
    await queue(app, *(Identifier("phone", p) for p in phones))

    first = await sender.deliver_due()  # four failures: the breaker opens for 0.01 s
    await queue(app, Identifier("email", EMAIL))
    await all_due(app)
    while_open = await sender.deliver_due()  # only the mail
    attempts_while_open = [(await rows(app))[p]["attempts"] for p in phones]
    clock.advance(0.015)
    await all_due(app)
    probe = await sender.deliver_due()  # one message; it fails: paused 0.02 s now
    clock.advance(0.015)
    await all_due(app)
    too_soon = await sender.deliver_due()
    receiver.failing = False
    clock.advance(0.015)
    await all_due(app)
    good_probe = await sender.deliver_due()
    rest = await sender.deliver_due()

    outbox = await rows(app)
    assert (first, while_open, probe, too_soon, good_probe, rest) == (4, 1, 1, 0, 1, 3)
    assert attempts_while_open == [1, 1, 1, 1]
    assert sorted(receiver.to(p)[0]["data"]["to"] for p in phones) == phones
    assert all(r["sent"] for r in outbox.values())
    assert len(mailbox.received(EMAIL)) == 1


async def test_a_claim_is_a_short_lease_and_a_dead_workers_claim_is_taken_over(
        app, silent, receiver):
    """A claim lasts 30 s by the database's clock, not minutes: a worker that dies
    mid-send (its lease never renewed) leaves the message to another worker as soon
    as those 30 s have passed."""
    dead = delivery(app, {"phone": webhook(silent.url)})
    alive = delivery(app, {"phone": webhook(receiver.url, receiver.secret)})
    await queue(app, Identifier("phone", PHONE))
    hung = asyncio.create_task(dead.deliver_due())
    await eventually(lambda: silent.connections == 1, WAIT, "the send that hangs")
    lease = (await rows(app))[PHONE]["lease_left"]
    hung.cancel()  # the worker is gone: nobody renews its claim
    await asyncio.wait({hung}, timeout=WAIT)

    before = await alive.deliver_due()
    async with app.db.connection() as conn:  # 30 s pass on the database's clock
        await conn.execute("UPDATE outbox SET leased_until = leased_until - interval '30 s'")
    after = await alive.deliver_due()

    assert isinstance(lease, float) and 25.0 < lease <= 30.0
    assert (before, after) == (0, 1)
    assert len(receiver.to(PHONE)) == 1


async def test_a_live_send_renews_its_lease_and_keeps_its_claim(app, silent, receiver):
    """While a send goes on, its worker renews the lease (every third of a lease), so
    a send longer than a lease is never taken over; a renewal by the database's clock
    pushes the lease a whole lease ahead."""
    slow = delivery(app, {"phone": webhook(silent.url)}, lease=3.0)
    other = delivery(app, {"phone": webhook(receiver.url, receiver.secret)})
    await queue(app, Identifier("phone", PHONE))
    task = asyncio.create_task(slow.run())
    try:
        await eventually(lambda: silent.connections == 1, WAIT, "the send that hangs")
        async with app.db.connection() as conn:  # the lease is about to run out
            await conn.execute("UPDATE outbox SET leased_until = now() + interval '0.5 s'")
        deadline = time.monotonic() + WAIT
        while (left := (await rows(app))[PHONE]["lease_left"]) < 2.0:
            assert time.monotonic() < deadline, "the lease was never renewed"
            await asyncio.sleep(0.05)
        taken = await other.deliver_due()
        async with app.db.connection() as conn:  # long past the lease, by the database
            await conn.execute("UPDATE outbox SET leased_until = now() - interval '1 s'")
        renewed = await slow.renew()
        taken_after_renewal = await other.deliver_due()
        after = (await rows(app))[PHONE]
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=WAIT)

    assert 2.0 <= left <= 3.0
    assert (taken, taken_after_renewal) == (0, 0)
    assert len(renewed) == 1 and 2.0 < after["lease_left"] <= 3.0
    assert receiver.to(PHONE) == [] and silent.connections == 1


def _self_signed(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh certificate for 127.0.0.1, and a client context
    trusting that certificate only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "cert.pem").write_bytes(pem)
    (directory / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return server, ssl.create_default_context(cadata=pem.decode())


async def test_an_https_webhook_gets_the_event_only_with_a_certificate_it_can_prove(
        app, tmp_path):
    """Over https the receiver's certificate is checked: trusted, the event arrives;
    unknown to the trust store, the send fails and the message waits."""
    server_tls, trusting = _self_signed(tmp_path)
    hook = WebhookReceiver(tls=server_tls).start()
    secret = webhook_secret(hook.secret).reveal()
    try:
        doubting = delivery(app, {"phone": WebhookChannel(hook.url, secret, time.time)})
        trusted = delivery(app, {"phone": WebhookChannel(hook.url, secret, time.time,
                                                         tls=trusting)})
        await queue(app, Identifier("phone", PHONE))

        refused = await doubting.deliver_due()
        refused_row = (await rows(app))[PHONE]
        await all_due(app)
        sent = await trusted.deliver_due()
    finally:
        hook.stop()

    assert (refused, refused_row["last_error"], refused_row["sent"]) == (
        1, "SSLCertVerificationError", False)
    assert sent == 1 and hook.to(PHONE)[0]["data"]["code"] == CODE
    assert hook.bad_signatures == 0
