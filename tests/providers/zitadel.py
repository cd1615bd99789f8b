"""A real OpenID Connect provider: the example OP of ``github.com/zitadel/oidc/v3``.

tests/providers/oidc-op/ is a small Go program (its own go.mod, the library pinned)
that runs the library's example OP unchanged, configured from a JSON file: clients
(id, secret, redirect URIs, globs allowed) and users (one with a verified e-mail,
one with an unverified one by default). ``op_binary`` builds it once into
``.tools/bin/authsvc-test-op`` (git-ignored), keyed by a hash of its sources, the
way scripts/install-tools keeps its pinned tools; a second build is a no-op.

``OIDCProvider.sign_in(url, username)`` signs a user in without a browser: it
follows the authorization URL to the example's login form, posts the form, and
returns the authorization response (the redirect back to the client, with
``code``, ``state`` and, RFC 9207, ``iss``) without following it.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from .http import Answer, Browserless

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests" / "providers" / "oidc-op"
TOOLS_BIN = Path(os.environ.get("AUTHSVC_TOOLS", ROOT / ".tools")) / "bin"
STARTUP_TIMEOUT = 60.0

CLIENT_ID = "authsvc"
CLIENT_SECRET = "authsvc-test-op-secret"  # a test provider's client secret, nothing real
# The gateway and authsvc listen on port 0 in tests: any local port and path.
REDIRECT_GLOBS = ("http://127.0.0.1:*/**", "http://localhost:*/**")
PASSWORD = "provider-password"


@dataclass(frozen=True)
class ProviderUser:
    """A user at a test provider: ``subject`` is the provider's ``sub``."""

    subject: str
    username: str
    email: str
    email_verified: bool
    password: str = PASSWORD


VERIFIED = ProviderUser("op-verified-1", "verified", "verified@op.example", True)
UNVERIFIED = ProviderUser("op-unverified-2", "unverified", "unverified@op.example", False)


def _source_hash() -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((SOURCE / name).read_bytes())
    return digest.hexdigest()


def op_binary() -> Path:
    """tests/providers/oidc-op built into .tools/bin (rebuilt when its sources change).
    Without Go: skipped locally, a failure under CI=true (as the gateway tests do)."""
    binary = TOOLS_BIN / "authsvc-test-op"
    stamp = TOOLS_BIN / ".authsvc-test-op.version"
    wanted = _source_hash()
    if binary.is_file() and stamp.is_file() and stamp.read_text().strip() == wanted:
        return binary
    go = shutil.which("go")
    if go is None:
        message = "the OIDC provider of the federation tests needs Go 1.26+ on PATH"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    TOOLS_BIN.mkdir(parents=True, exist_ok=True)
    built = subprocess.run([go, "build", "-o", str(binary), "."], cwd=SOURCE,
                           capture_output=True, text=True, timeout=600)
    if built.returncode != 0:
        pytest.fail(f"building tests/providers/oidc-op failed:\n{built.stderr}")
    stamp.write_text(wanted + "\n")
    return binary


@dataclass
class OIDCProvider:
    """A running zitadel example OP: its ``issuer``, the client authsvc uses and its
    users. ``log`` holds its stderr lines (one per HTTP request)."""

    issuer: str
    client_id: str
    client_secret: str
    users: tuple[ProviderUser, ...]
    process: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)

    def user(self, username: str) -> ProviderUser:
        return next(u for u in self.users if u.username == username)

    def sign_in(self, authorization_url: str, username: str = VERIFIED.username,
                password: str | None = None) -> str:
        """Signs ``username`` in at the login form the authorization URL leads to; returns
        the authorization response URL (the redirect to the client) without following it."""
        if password is None:
            password = self.user(username).password
        agent = Browserless()
        answer = self._within(agent, agent.get(authorization_url))
        if answer.location:  # an error response straight from the authorization endpoint
            return urljoin(answer.url, answer.location)
        request_id = answer.form_field("id")
        assert request_id, f"no login form at {answer.url}: {answer.status} {answer.body[:200]!r}"
        answer = self._within(agent, agent.post(urljoin(self.issuer + "/", "login/username"), {
            "id": request_id, "username": username, "password": password}))
        assert answer.location, f"no redirect: {answer.status} {answer.body[:300]!r}"
        return urljoin(answer.url, answer.location)

    def _within(self, agent: Browserless, answer: Answer) -> Answer:
        """Follows redirects while they stay on the provider's origin."""
        host = urlsplit(self.issuer).netloc
        while answer.location and urlsplit(urljoin(answer.url, answer.location)).netloc == host:
            answer = agent.get(urljoin(answer.url, answer.location))
        return answer


@contextmanager
def running_oidc_provider(users: tuple[ProviderUser, ...] = (VERIFIED, UNVERIFIED), *,
                          client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET,
                          redirect_uris: tuple[str, ...] = REDIRECT_GLOBS,
                          claims_in_id_token: bool = True,
                          iss_response: bool = True) -> Iterator[OIDCProvider]:
    """Starts the zitadel example OP on a free port of 127.0.0.1; stops it at exit."""
    binary = op_binary()
    with tempfile.TemporaryDirectory(prefix="authsvc-test-op-") as directory:
        config = Path(directory) / "op.json"
        config.write_text(json.dumps({
            "clients": [{"id": client_id, "secret": client_secret,
                         "redirect_uris": list(redirect_uris)}],
            "users": [{"id": u.subject, "username": u.username, "password": u.password,
                       "email": u.email, "email_verified": u.email_verified,
                       "given_name": u.username.title(), "family_name": "Tester"}
                      for u in users]}))
        process = subprocess.Popen(
            [str(binary), "-config", str(config),
             f"-claims-in-id-token={str(claims_in_id_token).lower()}",
             f"-iss-response={str(iss_response).lower()}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        provider: OIDCProvider | None = None
        try:
            first: queue.Queue[str] = queue.Queue()
            threading.Thread(target=lambda: first.put(process.stdout.readline() if process.stdout
                                                      else ""), daemon=True).start()
            try:
                line = first.get(timeout=STARTUP_TIMEOUT)
            except queue.Empty:
                line = ""
            if not line.startswith("issuer "):
                process.kill()
                _, err = process.communicate(timeout=10)
                pytest.fail(f"authsvc-test-op did not start: {line!r}\n{err}")
            provider = OIDCProvider(line.split()[1], client_id, client_secret, users, process)
            threading.Thread(target=_drain, args=(process, provider.log), daemon=True).start()
            yield provider
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


def _drain(process: subprocess.Popen[str], into: list[str]) -> None:
    if process.stderr is None:
        return
    with process.stderr:
        for line in process.stderr:
            into.append(line.rstrip("\n"))
