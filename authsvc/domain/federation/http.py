"""JSON over HTTP to identity providers, with one bound on the whole call.

A provider is a party authsvc does not control: it may be down, slow, or drip
its answer a byte at a time. Each call (connect, send, read the whole answer)
gets ``timeout`` seconds in all (``AUTHSVC_PROVIDER_TIMEOUT``), then the caller
is answered ``ProviderUnavailable`` and nothing waits on. The request runs on
a thread with the standard library's client (urllib: no further dependency
for a handful of calls per sign-in); the thread's own socket timeout is the
same bound, so an abandoned request ends soon after too. Answers are capped
at ``MAX_BODY`` bytes, redirects are not followed (a provider's endpoints are
configured or discovered, never sent on elsewhere), and nothing from the
answer reaches a log or an error message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import ProviderResponseInvalid, ProviderUnavailable

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # a discovery document, a key set or a token answer is far smaller


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any  # parsed JSON; None when the body was not JSON


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


class ProviderHttp:
    """GET and POST (a form) to a provider, answering parsed JSON."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    async def get(self, url: str, headers: Mapping[str, str] | None = None) -> Answer:
        return await self._call(url, None, headers or {})

    async def post_form(self, url: str, form: Mapping[str, str],
                        headers: Mapping[str, str] | None = None) -> Answer:
        body = urllib.parse.urlencode(form).encode()
        return await self._call(url, body, {
            "Content-Type": "application/x-www-form-urlencoded", **(headers or {})})

    async def _call(self, url: str, body: bytes | None, headers: Mapping[str, str],
                    ) -> Answer:
        """The answer; ``ProviderUnavailable`` for no answer in time, a broken
        connection or a 5xx."""
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._blocking, url, body, dict(headers)), self.timeout)
        except (TimeoutError, OSError) as exc:
            log.warning("identity provider call failed", extra={"fields": {
                "host": urllib.parse.urlsplit(url).netloc, "error": type(exc).__name__}})
            raise ProviderUnavailable() from None

    def _blocking(self, url: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ProviderResponseInvalid()  # a discovered endpoint is no file: or ftp:
        # S310: the scheme is checked just above.
        request = urllib.request.Request(url, data=body, method="POST" if body else "GET",  # noqa: S310
                                         headers={"Accept": "application/json",
                                                  "User-Agent": "authsvc", **headers})
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read(MAX_BODY + 1)
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read(MAX_BODY + 1)
        if status >= 500:
            raise ConnectionError(f"HTTP {status}")
        if len(raw) > MAX_BODY:
            raise ProviderResponseInvalid()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return Answer(status, parsed)
