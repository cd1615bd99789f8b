"""A tiny OAuth 2.0 provider that is not OpenID Connect, in GitHub's shape.

Endpoints as GitHub has them (https://docs.github.com/en/apps/oauth-apps/):

- ``GET /login/oauth/authorize`` (client_id, redirect_uri, state, scope,
  code_challenge + code_challenge_method=S256): a sign-in form; ``POST`` of it
  (login, password) redirects to ``redirect_uri?code=…&state=…``. No ``iss``:
  GitHub does not send one.
- ``POST /login/oauth/access_token`` (client_id, client_secret (form or HTTP
  Basic), code, redirect_uri, code_verifier): form-encoded by default, JSON with
  ``Accept: application/json``. Like GitHub, a bad code is answered ``200`` with
  ``{"error": "bad_verification_code"}``; a client must read the body.
- ``GET /user`` (``Authorization: Bearer|token …``): ``id`` (a number), ``login``,
  ``name``, ``email`` (the public one, may be null).
- ``GET /user/emails``: ``[{email, primary, verified, visibility}]``.

Codes are single-use and live ten minutes (GitHub's figure), tokens are random;
both are real in the sense that nothing else gets the user's data.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from .serving import Reply, Request, Served

CLIENT_ID = "Iv1.authsvc-test"
CLIENT_SECRET = "github-shape-test-secret"  # a test provider's secret, nothing real
PASSWORD = "provider-password"
CODE_LIFETIME = 600.0


@dataclass(frozen=True)
class GitHubUser:
    id: int
    login: str
    emails: tuple[tuple[str, bool, bool], ...]  # (email, primary, verified)
    public_email: str | None = None
    password: str = PASSWORD

    @property
    def subject(self) -> str:
        """The provider's stable key for this user: GitHub's numeric id, as a string."""
        return str(self.id)


OCTO_VERIFIED = GitHubUser(583231, "octo-verified",
                           (("octo@gh.example", True, True), ("old@gh.example", False, False)),
                           public_email="octo@gh.example")
OCTO_UNVERIFIED = GitHubUser(583232, "octo-unverified", (("unverified@gh.example", True, False),))


@dataclass
class _Grant:
    user: GitHubUser
    client_id: str
    redirect_uri: str
    challenge: str | None
    expires: float


@dataclass
class GitHubProvider:
    """The running provider: ``origin`` plus GitHub's endpoint URLs; ``requests``
    counts requests per path; ``now`` is its clock (seconds)."""

    users: tuple[GitHubUser, ...]
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    now: Callable[[], float] = time.time
    origin: str = ""
    requests: dict[str, int] = field(default_factory=dict)
    _codes: dict[str, _Grant] = field(default_factory=dict)
    _tokens: dict[str, GitHubUser] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def authorize_url(self) -> str:
        return self.origin + "/login/oauth/authorize"

    @property
    def token_url(self) -> str:
        return self.origin + "/login/oauth/access_token"

    @property
    def user_url(self) -> str:
        return self.origin + "/user"

    @property
    def emails_url(self) -> str:
        return self.origin + "/user/emails"

    def sign_in(self, authorization_url: str, login: str = OCTO_VERIFIED.login,
                password: str = PASSWORD) -> str:
        """Posts the sign-in form for ``authorization_url`` as ``login``; returns the
        redirect back to the client without following it (no browser needed)."""
        from .http import Browserless

        agent = Browserless()
        page = agent.get(authorization_url)
        assert page.status == 200, (page.status, page.body[:300])
        form = {name: page.form_field(name) or "" for name in
                ("client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method")}
        answer = agent.post(self.authorize_url, {**form, "login": login, "password": password})
        assert answer.location, (answer.status, answer.body[:300])
        return answer.location

    # --- the endpoints -------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        with self._lock:
            self.requests[request.path] = self.requests.get(request.path, 0) + 1
        routes = {
            ("GET", "/login/oauth/authorize"): self._authorize_page,
            ("POST", "/login/oauth/authorize"): self._authorize,
            ("POST", "/login/oauth/access_token"): self._token,
            ("GET", "/user"): self._user,
            ("GET", "/user/emails"): self._emails,
        }
        route = routes.get((request.method, request.path))
        return route(request) if route else Reply.json({"message": "Not Found"}, 404)

    def _authorize_page(self, request: Request) -> Reply:
        q = request.query
        if q.get("client_id") != self.client_id or not q.get("redirect_uri"):
            return Reply.html("<p>The client or redirect_uri is not valid.</p>", 400)
        if q.get("code_challenge") and q.get("code_challenge_method") != "S256":
            return Reply.html("<p>Only S256 code challenges.</p>", 400)
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(q.get(name, ""))}">'
            for name in ("client_id", "redirect_uri", "state", "code_challenge",
                         "code_challenge_method"))
        return Reply.html(
            "<!DOCTYPE html><title>Sign in to GitHub-shape</title>"
            f'<form method="POST" action="/login/oauth/authorize">{hidden}'
            '<label>Username <input id="login" name="login"></label>'
            '<label>Password <input id="password" name="password" type="password"></label>'
            '<button type="submit" id="authorize">Authorize</button></form>')

    def _authorize(self, request: Request) -> Reply:
        # The form's fields; a client that posts to the authorization URL itself (curl
        # in the guide) sends the request's parameters in the query instead.
        f = {**request.query, **request.form}
        user = next((u for u in self.users if u.login == f.get("login")), None)
        if user is None or f.get("password") != user.password:
            return Reply.html("<p>Incorrect username or password.</p>", 401)
        if f.get("client_id") != self.client_id or not f.get("redirect_uri"):
            return Reply.html("<p>The client or redirect_uri is not valid.</p>", 400)
        code = secrets.token_hex(10)  # GitHub's codes are 20 hex characters
        with self._lock:
            self._codes[code] = _Grant(user, self.client_id, f["redirect_uri"],
                                       f.get("code_challenge") or None,
                                       self.now() + CODE_LIFETIME)
        params = {"code": code}
        if f.get("state"):
            params["state"] = f["state"]
        separator = "&" if "?" in f["redirect_uri"] else "?"
        return Reply.redirect(f["redirect_uri"] + separator + urllib.parse.urlencode(params))

    def _client(self, request: Request) -> tuple[str | None, str | None]:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                pair = base64.b64decode(header[6:]).decode()
            except ValueError:
                return None, None
            client_id, _, secret = pair.partition(":")
            return urllib.parse.unquote(client_id), urllib.parse.unquote(secret)
        return request.form.get("client_id"), request.form.get("client_secret")

    def _token(self, request: Request) -> Reply:
        def answer(values: dict[str, str]) -> Reply:
            if "application/json" in request.headers.get("accept", ""):
                return Reply.json(values)
            return Reply(200, urllib.parse.urlencode(values).encode(),
                         "application/x-www-form-urlencoded; charset=utf-8")

        client_id, secret = self._client(request)
        if client_id != self.client_id or secret != self.client_secret:
            return answer({"error": "incorrect_client_credentials", "error_description":
                           "The client_id and/or client_secret passed are incorrect."})
        with self._lock:
            grant = self._codes.pop(request.form.get("code", ""), None)  # single use
        if grant is None or grant.expires <= self.now() or grant.client_id != client_id:
            return answer({"error": "bad_verification_code",
                           "error_description": "The code passed is incorrect or expired."})
        if request.form.get("redirect_uri") not in (None, grant.redirect_uri):
            return answer({"error": "redirect_uri_mismatch", "error_description":
                           "The redirect_uri MUST match the registered callback URL."})
        if grant.challenge is not None:
            verifier = request.form.get("code_verifier", "")
            computed = base64.urlsafe_b64encode(
                hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if not secrets.compare_digest(computed, grant.challenge):
                return answer({"error": "bad_verification_code",
                               "error_description": "The code_verifier does not match."})
        token = "gho_" + secrets.token_urlsafe(27)
        with self._lock:
            self._tokens[token] = grant.user
        return answer({"access_token": token, "token_type": "bearer",
                       "scope": "read:user,user:email"})

    def _bearer(self, request: Request) -> GitHubUser | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return None
        with self._lock:
            return self._tokens.get(token.strip())

    def _user(self, request: Request) -> Reply:
        user = self._bearer(request)
        if user is None:
            return Reply.json({"message": "Bad credentials"}, 401)
        return Reply.json({"id": user.id, "login": user.login, "name": user.login.title(),
                           "email": user.public_email, "type": "User"})

    def _emails(self, request: Request) -> Reply:
        user = self._bearer(request)
        if user is None:
            return Reply.json({"message": "Bad credentials"}, 401)
        return Reply.json([{"email": e, "primary": p, "verified": v,
                            "visibility": "public" if p else None} for e, p, v in user.emails])


@contextmanager
def running_github_provider(users: tuple[GitHubUser, ...] = (OCTO_VERIFIED, OCTO_UNVERIFIED),
                            host: str = "127.0.0.1", port: int = 0) -> Iterator[GitHubProvider]:
    provider = GitHubProvider(users)
    served = Served(provider, host, port)
    provider.origin = served.origin
    try:
        yield provider
    finally:
        served.close()


def main() -> None:
    """``python -m tests.providers.github [--listen HOST:PORT]``: serves the provider
    (its two users, client id and secret above) until SIGTERM or Ctrl-C."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: a free one)")
    host, _, port = parser.parse_args().listen.rpartition(":")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running_github_provider(host=host, port=int(port)) as provider:
        print(f"GitHub-shape provider on {provider.origin} (client id {provider.client_id})",
              flush=True)
        with suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
