"""Sending the outbox: a loop in every worker, SMTP and signed webhooks.

The loop claims due messages with a lease (``store.outbox.claim``: FOR
UPDATE SKIP LOCKED, so workers and replicas share the work and never send
one message at once), sends each, and records the outcome: sent (payload
wiped), or due again after a doubling delay (``AUTHSVC_OUTBOX_RETRY_BASE``
up to ``_MAX``, jittered), until ``AUTHSVC_OUTBOX_MAX_ATTEMPTS`` when it is
kept as failed for ``authsvc outbox`` to show. A mail server that is down
delays mail and loses none. A worker that dies between sending and recording
leaves a lease that runs out and the message is sent again: delivery is at
least once, exactly once while nothing crashes; each message carries a
stable id (``Message-ID``, ``webhook-id``) so a receiver can drop a repeat.

Channels by kind of identifier: email goes by SMTP (``AUTHSVC_SMTP_URL``) or,
with ``AUTHSVC_EMAIL_CHANNEL=webhook``, to the webhook; phone numbers always
go to the webhook (``AUTHSVC_WEBHOOK_URL``: the organisation's notifier sends
the SMS). A message whose channel is not configured waits in the outbox.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import random
import urllib.error
import urllib.request
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from ..clock import Clock
from ..core.tasks import raise_if_cancelled
from ..store import outbox as outbox_rows
from ..store.database import Database
from ..store.outbox import Message
from .messages import Messages, Rendered

log = logging.getLogger(__name__)

BATCH = 20
LEASE = 120.0  # seconds a claimed message is ours; longer than any send's timeout
POLL = 1.0  # seconds between looks at the outbox when nothing wakes the loop
SEND_TIMEOUT = 30.0
SENT_KEPT = 7 * 86_400  # sent rows (payload wiped) are pruned after this


class Channel(Protocol):
    async def send(self, message: Message, rendered: Rendered) -> None:
        """Deliver, or raise."""


class SmtpChannel:
    """``smtp://USER:PASSWORD@HOST:PORT`` (``?starttls=true`` to upgrade), or
    ``smtps://…`` (TLS from the start)."""

    def __init__(self, url: str, sender: str) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self._tls = parts.scheme == "smtps"
        self._starttls = query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes")
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (465 if self._tls else 587 if self._starttls else 25)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._sender = sender
        self._domain = sender.rpartition("@")[2].strip(">") or "authsvc"

    async def send(self, message: Message, rendered: Rendered) -> None:
        mail = EmailMessage()
        mail["From"] = self._sender
        mail["To"] = message.recipient
        mail["Subject"] = rendered.subject
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = f"<authsvc-outbox-{message.id}@{self._domain}>"
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(rendered.text)
        import aiosmtplib  # imported late: only a worker that sends mail needs it

        await aiosmtplib.send(
            mail, hostname=self._host, port=self._port, username=self._user,
            password=self._password, use_tls=self._tls, start_tls=self._starttls,
            timeout=SEND_TIMEOUT)


class WebhookChannel:
    """An HTTP POST of a JSON event, signed as the Standard Webhooks specification
    says: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (``v1,``
    and the base64 HMAC-SHA256 of ``id.timestamp.body`` under the secret)."""

    def __init__(self, url: str, secret: bytes, clock: Clock) -> None:
        self._url = url
        self._secret = secret
        self._clock = clock

    def signed(self, message: Message, rendered: Rendered) -> tuple[bytes, dict[str, str]]:
        now = int(self._clock())
        body = json.dumps({
            "type": f"authsvc.message.{message.kind}",
            "timestamp": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
            "data": {"channel": message.channel, "to": message.recipient,
                     "kind": message.kind, "subject": rendered.subject,
                     "text": rendered.text, **rendered.fields},
        }, separators=(",", ":")).encode()
        webhook_id = f"msg_authsvc_{message.id}"
        signature = base64.b64encode(hmac.new(
            self._secret, f"{webhook_id}.{now}.".encode() + body, hashlib.sha256).digest())
        return body, {"content-type": "application/json", "webhook-id": webhook_id,
                      "webhook-timestamp": str(now),
                      "webhook-signature": "v1," + signature.decode()}

    async def send(self, message: Message, rendered: Rendered) -> None:
        body, headers = self.signed(message, rendered)
        await asyncio.to_thread(self._post, body, headers)

    def _post(self, body: bytes, headers: dict[str, str]) -> None:
        request = urllib.request.Request(self._url, data=body, headers=headers,  # noqa: S310 (http(s) checked in config)
                                         method="POST")
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT) as response:  # noqa: S310
            if not 200 <= response.status < 300:
                raise urllib.error.HTTPError(self._url, response.status, "not 2xx",
                                             response.headers, None)


class Delivery:
    def __init__(self, db: Database, messages: Messages, channels: dict[str, Channel], *,
                 retry_base: float, retry_max: float, max_attempts: int,
                 batch: int = BATCH, lease: float = LEASE) -> None:
        self._db = db
        self._messages = messages
        self._channels = channels
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._max_attempts = max_attempts
        self._batch = batch
        self._lease = lease
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look at the outbox now (a transaction just wrote to it)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled; a failure (the database away) waits for the next pass."""
        while True:
            raise_if_cancelled()
            self._wake.clear()
            claimed = 0
            try:
                claimed = await self.deliver_due()
            except Exception as exc:
                log.warning("outbox delivery pass failed; trying again shortly",
                            extra={"fields": {"error": type(exc).__name__}})
            if claimed < self._batch:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
                # cancellation that arrives as the event is set, and the loop would
                # then outlive its cancel at shutdown.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL):
                        await self._wake.wait()

    async def deliver_due(self) -> int:
        """One pass: claim up to a batch of due messages and send them; how many."""
        if not self._channels:
            return 0
        async with self._db.transaction() as conn:
            claimed = await outbox_rows.claim(conn, sorted(self._channels), self._batch,
                                              self._lease)
        for message in claimed:
            await self._deliver(message)
        return len(claimed)

    async def _deliver(self, message: Message) -> None:
        try:
            await self._channels[message.channel].send(message,
                                                       self._messages.render(message))
        except Exception as exc:
            error = _describe(exc)
            delay = min(self._retry_max, self._retry_base * 2 ** (message.attempts - 1))
            delay *= 0.75 + random.random() / 2  # noqa: S311 (jitter, not a secret)
            async with self._db.connection() as conn:
                failed = await outbox_rows.retry_later(conn, message.id, delay, error,
                                                       self._max_attempts)
            log.warning("message not delivered; %s", "giving up" if failed else "will retry",
                        extra={"fields": {"outbox_id": message.id, "kind": message.kind,
                                          "channel": message.channel, "error": error,
                                          "attempts": message.attempts}})
            return
        async with self._db.connection() as conn:
            await outbox_rows.sent(conn, message.id)
        log.info("message delivered", extra={"fields": {
            "outbox_id": message.id, "kind": message.kind, "channel": message.channel}})

    async def prune(self) -> int:
        async with self._db.connection() as conn:
            return await outbox_rows.prune_sent(conn, SENT_KEPT)


def _describe(exc: BaseException) -> str:
    """What went wrong, without secrets: the error's type and, for SMTP and HTTP,
    the server's status code."""
    code = getattr(exc, "code", None)
    return type(exc).__name__ + (f" {code}" if isinstance(code, int) else "")


def channels(settings_email_channel: str, smtp: SmtpChannel | None,
             webhook: WebhookChannel | None) -> dict[str, Channel]:
    """Which channel carries each kind of identifier, of those configured."""
    chosen: dict[str, Channel] = {}
    email = smtp if settings_email_channel == "smtp" else webhook
    if email is not None:
        chosen["email"] = email
    if webhook is not None:
        chosen["phone"] = webhook
    return chosen
