"""The HTTP edge under test: the gateway binary of this checkout, in front of
an authsvc server.

``FORWARDING`` is the gateway with no watch account: it forwards every
Validate to authsvc. ``edge_flags`` gives it a watch account (a user with the
``authsvc.revocations`` scope): it then verifies tokens itself while its
revocation feed is current (Validate at the edge).
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

from .service import ROOT

FORWARDING: list[str] = []
WATCH_EMAIL = "watch@example.com"
WATCH_SCOPES = ("authsvc.revocations",)


def build(out_dir: Path) -> Path:
    """``go build`` the gateway into ``out_dir``; the binary's path."""
    binary = out_dir / "authsvc-gateway"
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=ROOT / "gateway", check=True)
    return binary


def edge_flags(password_file: Path, access_token_ttl_s: int) -> list[str]:
    """Flags for a gateway that verifies at the edge with the watch account."""
    return ["--watch-email", WATCH_EMAIL, "--watch-password-file", str(password_file),
            "--access-token-ttl", f"{access_token_ttl_s}s"]


class Gateway:
    """One gateway process on a free local port."""

    def __init__(self, binary: Path, upstream: str, flags: Sequence[str]) -> None:
        self.argv = [str(binary), "--listen", "127.0.0.1:0", "--upstream", upstream, *flags]
        self._proc: subprocess.Popen[str] | None = None
        self.address = ""

    def start(self) -> None:
        self._proc = subprocess.Popen(self.argv, stderr=subprocess.PIPE, text=True)
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            if match := re.search(r"listening on http://(127\.0\.0\.1:\d+)", line):
                self.address = match.group(1)
                # keep draining stderr so the gateway never blocks on a full pipe
                threading.Thread(target=_drain, args=(self._proc.stderr,), daemon=True).start()
                return
        self._proc.wait()
        raise RuntimeError(f"the gateway did not start ({self._proc.returncode})")

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def url(self, path: str) -> str:
        return f"http://{self.address}{path}"

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


@contextlib.contextmanager
def running(gateway: Gateway) -> Iterator[Gateway]:
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def sign_in(gateway: Gateway, email: str, password: str) -> str:
    """An access token from ``POST /v1/auth/signin``."""
    request = urllib.request.Request(  # noqa: S310 (http to our gateway)
        gateway.url("/v1/auth/signin"), method="POST",
        data=json.dumps({"email": email, "password": password}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (our gateway)
        return str(json.load(response)["access_token"])


def _drain(stream: Iterator[str]) -> None:
    for _ in stream:
        pass
