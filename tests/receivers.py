"""Real receivers for what authsvc sends: an SMTP server (aiosmtpd) and an HTTP
server that checks Standard Webhooks signatures (the ``standardwebhooks``
reference library). Each runs in a thread of its own on 127.0.0.1; tests
wait for what arrives by polling with a generous bound, never by sleeping a
fixed time."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import os
import re
import threading
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from .helpers import eventually
from .servers import free_port

WAIT = 60.0
_CODE = re.compile(r"\b([0-9]{8})\b")


class Mailbox:
    """An SMTP server that keeps every message it accepts. ``stop`` and ``start`` take
    it down and bring it back on the same port (a mail server outage)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"smtp://127.0.0.1:{self.port}"
        self._messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> Mailbox:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port,
                                      ready_timeout=WAIT)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self._messages.append(message)
        return "250 OK"

    def received(self, to: str | None = None) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self._messages if to is None or m["To"] == to]

    async def wait_for(self, to: str, count: int = 1) -> list[EmailMessage]:
        """The messages to ``to`` once there are at least ``count`` of them."""
        await eventually(lambda: len(self.received(to)) >= count, WAIT,
                         lambda: f"{count} messages to {to} ({len(self.received(to))} arrived)")
        return self.received(to)

    async def code(self, to: str, count: int = 1) -> str:
        """The code in the ``count``-th message to ``to``."""
        message = (await self.wait_for(to, count))[count - 1]
        match = _CODE.search(text_of(message))
        assert match is not None, text_of(message)
        return match.group(1)


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


class WebhookReceiver:
    """An HTTP server for signed webhook events: a good signature is kept and answered
    204; a bad one is counted and answered 400. ``failing`` makes it answer 503."""

    def __init__(self) -> None:
        self.secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        self.events: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.bad_signatures = 0
        self.failing = False
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if receiver.failing:
                    self.send_response(503)
                    self.end_headers()
                    return
                try:
                    event = Webhook(receiver.secret).verify(body, headers)
                except WebhookVerificationError:
                    with receiver._lock:
                        receiver.bad_signatures += 1
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver._lock:
                    receiver.events.append(event)
                    receiver.ids.append(headers["webhook-id"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/notify"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def to(self, recipient: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["data"]["to"] == recipient]

    async def wait_for(self, recipient: str, count: int = 1) -> list[dict[str, Any]]:
        await eventually(lambda: len(self.to(recipient)) >= count, WAIT,
                         lambda: f"{count} events for {recipient} ({len(self.to(recipient))}"
                         " arrived)")
        return self.to(recipient)


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
