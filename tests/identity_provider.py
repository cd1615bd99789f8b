"""A small identity provider on a real HTTP port, for the federation tests.

It is a party to the protocol, not a stand-in for authsvc's code: discovery,
a JWKS, authorization codes bound to their PKCE challenge and redirect URI and
spent once, client authentication, RS256-signed ``id_token``s, user
information, and in ``github`` shape (no OpenID Connect) GitHub's token answer,
``/user`` and ``/user/emails``. A test makes it misbehave the way real
providers and attackers do: ``tamper`` rewrites the header and claims of the
next id_tokens (and may sign with another key, or none), ``delay`` holds every
answer back, ``advertise_iss`` says whether it sends RFC 9207's ``iss``.

The browser step (``GET /authorize``) signs in ``user`` at once and redirects
back with ``code``, ``state`` (and ``iss``), as a provider does after its own
login page; ``authorize()`` follows an authorization URL like a browser would,
without following the redirect back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

Tamper = Callable[[dict[str, Any], dict[str, Any]], Any]


@dataclass
class User:
    subject: str
    email: str | None = None
    email_verified: bool = False
    acr: str | None = None


@dataclass
class _Grant:
    user: User
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**data, "kid": kid, "use": "sig", "alg": "RS256"}


@dataclass
class IdentityProvider:
    """Serves on 127.0.0.1 (a free port) until ``close()``."""

    client_id: str = "authsvc"
    client_secret: str = "provider-secret"
    shape: str = "oidc"  # or "github"
    advertise_iss: bool = True
    user: User = field(default_factory=lambda: User("alice-sub", "alice@example.com", True))
    tamper: Tamper | None = None
    delay: float = 0.0
    key: rsa.RSAPrivateKey = field(default_factory=new_key)
    kid: str = "key-1"
    client_key: Any = None  # a public key: the client authenticates by private_key_jwt
    jwks_fetches: int = 0
    token_requests: int = 0
    _grants: dict[str, _Grant] = field(default_factory=dict)
    _tokens: dict[str, User] = field(default_factory=dict)
    _released: threading.Event = field(default_factory=threading.Event)
    _assertions_seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                provider._answer(self, "GET")

            def do_POST(self) -> None:
                provider._answer(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.issuer = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def rotate(self) -> None:
        """A new signing key under a new kid (the old one leaves the set)."""
        self.key, self.kid = new_key(), f"key-{os.urandom(4).hex()}"

    # --- the endpoints -------------------------------------------------------
    def _answer(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        if self.delay:
            self._released.wait(self.delay)
        url = urllib.parse.urlsplit(handler.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        body = b""
        if method == "POST":
            body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        form = dict(urllib.parse.parse_qsl(body.decode()))
        routes = {
            ("GET", "/.well-known/openid-configuration"): lambda: self._discovery(),
            ("GET", "/jwks"): lambda: self._jwks(),
            ("GET", "/authorize"): lambda: self._authorize(query),
            ("POST", "/token"): lambda: self._token(form, handler.headers.get("Authorization")),
            ("GET", "/userinfo"): lambda: self._userinfo(handler.headers.get("Authorization")),
            ("GET", "/user"): lambda: self._github_user(handler.headers.get("Authorization")),
            ("GET", "/user/emails"): lambda: self._github_emails(
                handler.headers.get("Authorization")),
        }
        route = routes.get((method, url.path))
        status, headers, payload = route() if route else (404, {}, {"error": "not_found"})
        raw = json.dumps(payload).encode() if payload is not None else b""
        handler.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)

    def _discovery(self) -> tuple[int, dict[str, str], Any]:
        if self.shape != "oidc":
            return 404, {}, {"error": "not_found"}
        doc = {"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
               "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
               "userinfo_endpoint": f"{self.issuer}/userinfo",
               "response_types_supported": ["code"],
               "id_token_signing_alg_values_supported": ["RS256"],
               "code_challenge_methods_supported": ["S256"]}
        if self.advertise_iss:
            doc["authorization_response_iss_parameter_supported"] = True  # type: ignore[assignment]
        return 200, {}, doc

    def _jwks(self) -> tuple[int, dict[str, str], Any]:
        self.jwks_fetches += 1
        return 200, {}, {"keys": [public_jwk(self.key, self.kid)]}

    def _authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if query.get("client_id") != self.client_id or query.get("response_type") != "code" \
                or query.get("code_challenge_method") != "S256":
            return 400, {}, {"error": "invalid_request"}
        code = base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
        self._grants[code] = _Grant(self.user, self.client_id, query["redirect_uri"],
                                    query["code_challenge"], query.get("nonce"))
        back = {"code": code, "state": query.get("state", "")}
        if self.advertise_iss:
            back["iss"] = self.issuer
        return 302, {"Location": query["redirect_uri"] + "?" + urllib.parse.urlencode(back)}, None

    def _client_ok(self, form: dict[str, str], authorization: str | None) -> bool:
        if self.client_key is not None:  # private_key_jwt (RFC 7523), and only that
            if form.get("client_assertion_type") != \
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
                return False
            try:
                claims = jwt.decode(form.get("client_assertion", ""), self.client_key,
                                    algorithms=["RS256", "ES256", "EdDSA"],
                                    audience=self.issuer, options={"require": [
                                        "iss", "sub", "aud", "exp", "jti"]})
            except jwt.PyJWTError:
                return False
            if claims["jti"] in self._assertions_seen:
                return False
            self._assertions_seen.add(claims["jti"])
            return claims["iss"] == claims["sub"] == form.get("client_id") == self.client_id
        if authorization and authorization.startswith("Basic "):
            pair = base64.b64decode(authorization[6:]).decode()
            client, _, secret = pair.partition(":")
            return (urllib.parse.unquote(client), urllib.parse.unquote(secret)) == (
                self.client_id, self.client_secret)
        return (form.get("client_id"), form.get("client_secret")) == (
            self.client_id, self.client_secret)

    def _token(self, form: dict[str, str], authorization: str | None,
               ) -> tuple[int, dict[str, str], Any]:
        self.token_requests += 1
        if not self._client_ok(form, authorization):
            return 401, {}, {"error": "invalid_client"}
        grant = self._grants.pop(form.get("code", ""), None)  # a code is spent once
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if grant is None or grant.redirect_uri != form.get("redirect_uri") or \
                grant.challenge != challenge or form.get("grant_type") != "authorization_code":
            return 400, {}, {"error": "invalid_grant"}
        access = base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
        self._tokens[access] = grant.user
        answer: dict[str, Any] = {"access_token": access, "token_type": "bearer"}
        if self.shape == "oidc":
            answer["id_token"] = self.id_token(grant.user, grant.nonce)
        return 200, {}, answer

    def id_token(self, user: User, nonce: str | None, **extra: Any) -> str:
        """An id_token as this provider signs it (``tamper`` applied)."""
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.issuer, "sub": user.subject,
                                  "aud": self.client_id, "iat": now, "exp": now + 300,
                                  **extra}
        if nonce is not None:
            claims["nonce"] = nonce
        if user.email is not None:
            claims.update(email=user.email, email_verified=user.email_verified)
        if user.acr is not None:
            claims["acr"] = user.acr
        header: dict[str, Any] = {"kid": self.kid, "alg": "RS256"}
        if self.tamper is not None:
            signed = self.tamper(header, claims)
            if isinstance(signed, str):
                return signed
        return jwt.encode(claims, self.key, algorithm=header.pop("alg"), headers=header)

    def _bearer_user(self, authorization: str | None) -> User | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        return self._tokens.get(authorization[7:])

    def _userinfo(self, authorization: str | None) -> tuple[int, dict[str, str], Any]:
        user = self._bearer_user(authorization)
        if user is None:
            return 401, {}, {"error": "invalid_token"}
        return 200, {}, {"sub": user.subject, "email": user.email,
                         "email_verified": user.email_verified}

    def _github_user(self, authorization: str | None) -> tuple[int, dict[str, str], Any]:
        user = self._bearer_user(authorization)
        if user is None:
            return 401, {}, {"message": "Bad credentials"}
        return 200, {}, {"id": int(user.subject), "login": f"user{user.subject}",
                         "email": user.email}

    def _github_emails(self, authorization: str | None) -> tuple[int, dict[str, str], Any]:
        user = self._bearer_user(authorization)
        if user is None:
            return 401, {}, {"message": "Bad credentials"}
        return 200, {}, [{"email": "other@example.org", "primary": False, "verified": True},
                         {"email": user.email, "primary": True,
                          "verified": user.email_verified}]

    # --- the browser's part --------------------------------------------------
    def authorize(self, authorization_url: str) -> dict[str, str]:
        """Visit the authorization URL as the signed-in ``user``; the callback's
        query parameters (code, state, iss)."""
        class Stay(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        opener = urllib.request.build_opener(Stay)
        try:
            opener.open(authorization_url, timeout=10)
        except urllib.error.HTTPError as answer:
            if answer.code != 302:
                raise
            location = answer.headers["Location"]
            return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
        raise AssertionError("the provider did not redirect back")
