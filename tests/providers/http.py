"""A browserless HTTP agent for the test providers: keeps cookies, never follows a
redirect on its own (the tests look at each one), reads hidden form fields.

Standard library only (urllib), so the provider fixtures need nothing installed.
"""

from __future__ import annotations

import html.parser
import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

TIMEOUT = 30.0  # seconds per request: a provider in a test answers in milliseconds


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Inputs(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "input":
            values = dict(attrs)
            if values.get("name"):
                self.fields[str(values["name"])] = values.get("value") or ""


@dataclass(frozen=True)
class Answer:
    url: str
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def location(self) -> str | None:
        return self.headers.get("location") if 300 <= self.status < 400 else None

    def form_field(self, name: str) -> str | None:
        parser = _Inputs()
        parser.feed(self.body.decode("utf-8", "replace"))
        return parser.fields.get(name)


class Browserless:
    """One user agent: a cookie jar shared by its requests."""

    def __init__(self) -> None:
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect())

    def get(self, url: str, headers: dict[str, str] | None = None) -> Answer:
        return self._send(urllib.request.Request(url, headers=headers or {}))  # noqa: S310 (_send checks the scheme)

    def post(self, url: str, form: dict[str, str],
             headers: dict[str, str] | None = None) -> Answer:
        data = urllib.parse.urlencode(form).encode()
        return self._send(urllib.request.Request(  # noqa: S310 (_send checks the scheme)
            url, data=data, method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}))

    def _send(self, request: urllib.request.Request) -> Answer:
        if request.type not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {request.full_url}")
        try:
            with self._opener.open(request, timeout=TIMEOUT) as response:
                return Answer(request.full_url, response.status,
                              {k.lower(): v for k, v in response.headers.items()}, response.read())
        except urllib.error.HTTPError as error:  # 3xx (not followed), 4xx, 5xx
            with error:
                return Answer(request.full_url, error.code,
                              {k.lower(): v for k, v in error.headers.items()}, error.read())


def query_of(url: str) -> dict[str, str]:
    """The query parameters of ``url``: of a redirect back to the client, the
    authorization response (code, state, iss; or error)."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
