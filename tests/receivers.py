"""Real receivers for what authsvc sends: an SMTP server (aiosmtpd) and an HTTP
server that checks Standard Webhooks signatures (the ``standardwebhooks``
reference library); and misbehaving ones: a server that accepts connections and
never answers (a hung webhook, a mail server with no greeting), a webhook that
answers one byte every few seconds, and a mail server that hangs mid-DATA. Each
runs in threads of its own on 127.0.0.1; tests wait for what arrives by
polling with a generous bound, never by sleeping a fixed time."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email
import email.policy
import json
import os
import re
import socket
import ssl
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


class HangingMailbox(Mailbox):
    """An SMTP server that takes MAIL, RCPT and the message, then never answers the
    end of DATA (a mail server hung mid-DATA); ``in_data`` counts such messages."""

    def __init__(self) -> None:
        super().__init__()
        self.in_data = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.in_data += 1
        await asyncio.sleep(3600)  # cancelled when the server stops
        return "451 never"


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


class WebhookReceiver:
    """An HTTP server for signed webhook events: a good signature is kept and answered
    204; a bad one is counted and answered 400. ``failing`` makes it answer 503. With
    ``tls`` (an ssl server context) it speaks HTTPS."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
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
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        scheme = "http" if tls is None else "https"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}/notify"
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


class _RawServer:
    """A TCP server on 127.0.0.1 with a thread per connection running ``_serve``;
    ``connections`` counts those accepted; ``stop`` ends them all."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.connections = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []

    def start(self) -> _RawServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            for conn in self._open:
                conn.close()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._stopping.is_set():  # accepted as stop() closed the others
                    conn.close()
                    return
                self.connections += 1
                self._open.append(conn)
            threading.Thread(target=self._guarded, args=(conn,), daemon=True).start()

    def _guarded(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the connection closed under it
            self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


class SilentServer(_RawServer):
    """Accepts connections, reads what comes, never answers: a webhook that hangs (at
    ``url``), or a mail server that never greets (at ``smtp_url``)."""

    def __init__(self) -> None:
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}/notify"
        self.smtp_url = f"smtp://127.0.0.1:{self.port}"

    def _serve(self, conn: socket.socket) -> None:
        while not self._stopping.is_set() and conn.recv(65536):
            pass
        self._stopping.wait()


class DrippingWebhook(_RawServer):
    """Reads the whole request, then answers ``204`` one byte every ``interval`` seconds:
    each read gets a byte long before any read time-out, the answer takes minutes."""

    ANSWER = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"

    def __init__(self, interval: float = 2.0) -> None:
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}/notify"
        self.interval = interval
        self.requests = 0

    def _serve(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        declared = re.search(rb"content-length: *([0-9]+)", head, re.IGNORECASE)
        length = int(declared.group(1)) if declared else 0
        while len(body) < length:
            body += conn.recv(65536)
        with self._lock:
            self.requests += 1
        for byte in self.ANSWER:
            if self._stopping.wait(self.interval):
                return
            conn.sendall(bytes([byte]))


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
