"""The HTTP plumbing the Python test providers share: a threading server on a free
port of 127.0.0.1 whose handler hands each request to the provider object."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]  # lower-case names


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] | None = None

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Reply:
        return cls(status, json.dumps(value).encode())

    @classmethod
    def redirect(cls, location: str) -> Reply:
        return cls(302, b"", "text/plain", {"Location": location})

    @classmethod
    def html(cls, text: str, status: int = 200) -> Reply:
        return cls(status, text.encode(), "text/html; charset=utf-8")


class Routes(Protocol):
    def handle(self, request: Request) -> Reply: ...


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: Routes
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        form = dict(urllib.parse.parse_qsl(raw)) if "form" in (
            self.headers.get("Content-Type") or "") else {}
        request = Request(self.command, url.path, dict(urllib.parse.parse_qsl(url.query)), form,
                          {k.lower(): v for k, v in self.headers.items()})
        reply = self.routes.handle(request)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (reply.headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = _dispatch
    do_POST = _dispatch


class Served:
    """Serves ``routes`` on ``host``:``port`` (default a free port of 127.0.0.1) from a
    daemon thread."""

    def __init__(self, routes: Routes, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = type("Handler", (_Handler,), {"routes": routes})
        self._server = http.server.ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.origin = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
