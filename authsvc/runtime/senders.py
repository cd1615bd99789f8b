"""The outbox's adapters: mail by SMTP and signed webhooks by HTTP POST.

They implement ``domain.delivery.outbox.Channel``; the delivery loop bounds each
send by one deadline (``AUTHSVC_OUTBOX_SEND_TIMEOUT``) and cancels it when the
deadline passes or the worker stops. So a send here is cancellable at every
step and never holds a thread: a cancelled SMTP send drops the connection at
once (no polite QUIT to a server that may not answer), and the webhook is a
plain asyncio HTTP/1.1 POST.

Why a small HTTP/1.1 POST of our own rather than an HTTP client library: the
webhook is one POST whose only answer that matters is the status line. Done
with asyncio streams it is about forty lines, holds no thread, needs no new
dependency in the server's image, and is cancelled like any coroutine; TLS is
the standard library's default context (certificates and host name
checked). What it leaves out on purpose: redirects (a 3xx is a failed
delivery, like any non-2xx: a notifier's address is configured, not
discovered), proxies from the environment, and keep-alive (one connection
per message, ``Connection: close``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..clock import Clock
from ..core.tasks import cancellable
from ..domain.delivery.messages import Rendered
from ..domain.delivery.outbox import SEND_TIMEOUT, Channel
from ..errors import ConfigError
from ..store.outbox import Message

QUIT_WAIT = 2.0  # seconds a polite QUIT may take after a mail was accepted
_MAX_HEADER_LINES = 100
_STATUS = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: [^\r\n]*)?\r?\n")


class SmtpChannel:
    """``smtp://USER:PASSWORD@HOST:PORT`` (``?starttls=true`` to upgrade), or
    ``smtps://…`` (TLS from the start)."""

    def __init__(self, url: str, sender: str, timeout: float = SEND_TIMEOUT) -> None:
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
        self._timeout = timeout
        self._goodbyes: set[asyncio.Task[None]] = set()
        self.receiver = f"{parts.scheme}://{self._host}:{self._port}"

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

        client = aiosmtplib.SMTP(
            hostname=self._host, port=self._port, username=self._user,
            password=self._password, use_tls=self._tls, start_tls=self._starttls,
            timeout=self._timeout)
        # Not ``async with client``: its exit answers a cancellation (shutdown, or the
        # send's deadline) by awaiting QUIT from a server that may never answer. The
        # talk runs in a task of its own: aiosmtplib waits in ``asyncio.wait_for``,
        # which can lose a cancellation that comes as the connection opens, and then
        # waits for a greeting that may never come.

        async def talk() -> None:
            await client.connect()
            await client.send_message(mail)

        try:
            await cancellable(talk(), lambda: _drop(client))
        except BaseException:
            _drop(client)
            raise
        # Accepted: delivered. QUIT politely, but on the side and briefly, so a server
        # that stalls after accepting can neither fail the send nor hold it.
        goodbye = asyncio.create_task(_quit(client), name="smtp-quit")
        self._goodbyes.add(goodbye)
        goodbye.add_done_callback(self._goodbyes.discard)


async def _quit(client: Any) -> None:
    try:
        async with asyncio.timeout(QUIT_WAIT):
            await client.quit()
    except Exception:  # noqa: S110 (the mail is delivered; how the talk ends does not matter)
        pass
    finally:
        _drop(client)


def _drop(client: Any) -> None:
    """Close an SMTP connection at once, without QUIT (TLS without close_notify)."""
    if client.transport is not None:
        client.transport.abort()
    client.close()


class WebhookChannel:
    """An HTTP POST of a JSON event, signed as the Standard Webhooks specification
    says: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (``v1,``
    and the base64 HMAC-SHA256 of ``id.timestamp.body`` under the secret)."""

    def __init__(self, url: str, secret: bytes, clock: Clock,
                 tls: ssl.SSLContext | None = None) -> None:
        """``tls``: how to check an https receiver (the system's CAs by default)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("AUTHSVC_WEBHOOK_URL must be an http:// or https:// URL")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if any(c.isspace() or not c.isprintable() for c in target):
            raise ConfigError("AUTHSVC_WEBHOOK_URL: the path must be percent-encoded")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._target = target
        default_port = parts.port is None or parts.port == (443 if self._https else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default_port else f"{host}:{self._port}"
        self._tls = (tls or ssl.create_default_context()) if self._https else None
        self._secret = secret
        self._clock = clock
        # What logs may say about the receiver: not its path or query, which may
        # hold a token (as some notifiers' hook URLs do).
        self.receiver = f"{parts.scheme}://{self._host_header}"

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
        status = await self._post(body, headers)
        if not 200 <= status < 300:
            raise HTTPError(status)

    async def _post(self, body: bytes, headers: dict[str, str]) -> int:
        """POST ``body``; the final status code. Cancellable at every step."""
        reader, writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._tls,
            server_hostname=self._host if self._tls else None)
        try:
            head = "".join(f"{name}: {value}\r\n" for name, value in {
                "host": self._host_header, "user-agent": "authsvc",
                "content-length": str(len(body)), "connection": "close", **headers}.items())
            writer.write(f"POST {self._target} HTTP/1.1\r\n{head}\r\n".encode("ascii") + body)
            await writer.drain()
            while True:
                status = _status(await reader.readline())
                for _ in range(_MAX_HEADER_LINES):
                    if (await reader.readline()).strip() == b"":
                        break
                else:
                    raise WebhookProtocolError("too many header lines")
                if status >= 200:  # not an interim 1xx answer
                    return status
        finally:
            writer.transport.abort()  # one message per connection; nothing left to read


class HTTPError(Exception):
    """The webhook answered, but not with 2xx; ``code`` is its status."""

    def __init__(self, code: int) -> None:
        super().__init__(f"{code} is not 2xx")
        self.code = code


class WebhookProtocolError(Exception):
    """The webhook's answer was not HTTP/1.x."""


def _status(line: bytes) -> int:
    if not line:
        raise ConnectionResetError("the webhook closed the connection without an answer")
    match = _STATUS.fullmatch(line)
    if match is None:
        raise WebhookProtocolError("malformed status line")
    return int(match.group(1))


def channels(email_channel: str, smtp: SmtpChannel | None,
             webhook: WebhookChannel | None) -> dict[str, Channel]:
    """Which channel carries each kind of identifier, of those configured."""
    chosen: dict[str, Channel] = {}
    email = smtp if email_channel == "smtp" else webhook
    if email is not None:
        chosen["email"] = email
    if webhook is not None:
        chosen["phone"] = webhook
    return chosen

