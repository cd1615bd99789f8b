"""A test OpenID Provider in Python whose answers a test can bend: the attacks.

The zitadel example OP (zitadel.py) is a correct provider and cannot be told to
sign with ``alg: none``, put another audience in its id_token, issue one already
expired, sign with a key it does not publish, or answer with another issuer's
``iss``. This one can, and otherwise behaves as a real provider: discovery, a
JWKS, authorization code + PKCE (S256, checked), client authentication
(client_secret_basic or _post, checked), single-use codes, RS256 id_tokens
signed with a real RSA key, userinfo. Authorization is granted at once (a user
already signed in at the provider), so neither a browser nor a form is needed:
``authorize(url)`` returns the redirect back to the client.

What a test can bend (attributes, set before the flow):

- ``alg``: ``"RS256"`` (default), ``"none"`` (unsigned), ``"HS256"`` (signed with
  the client secret: the algorithm-confusion attack), ``"unknown-key"`` (RS256
  by a key not in the JWKS, under the published ``kid``);
- ``claims``: merged into every id_token (``{"aud": "someone-else"}``,
  ``{"exp": …}``, ``{"iss": other}``, ``{"nonce": …}``); ``drop``: claims removed;
- ``iss_response``: the ``iss`` of the authorization response (default the
  issuer; ``None`` leaves it out; another provider's issuer for a mix-up);
- ``hold_token``: a ``threading.Event``; while it is not set, the token endpoint
  does not answer (a slow provider; set it at the end). A provider that is down
  altogether: tests/receivers.SilentServer (accepts, never answers) or a closed
  port.
- ``now``: its clock (seconds since the epoch), e.g. a test's FakeClock.
- ``alg="HS256-public-key"``: HMAC keyed with the PEM of the published public key
  (the key-confusion attack on a verifier that takes the JWKS key as an HMAC
  secret); ``signing_kid``: the ``kid`` the header names (``None``: the published
  one), e.g. one the provider does not have.

What a test can change about the provider itself (constructor keywords of
``running_rogue_provider``, or later):

- ``user``: who is signed in at the provider; a code stands for the user signed in
  when it was issued, as at a real provider.
- ``client_id``, ``client_secret``, ``key`` (its signing key; a second provider
  takes ``spare_key()``), ``rotate()``: a new signing key under a new ``kid`` (the
  old one leaves the JWKS).
- ``client_key``: a public key; the token endpoint then accepts private_key_jwt
  (RFC 7523) client assertions signed by it, and nothing else: ``iss`` = ``sub``
  = ``client_id``, ``aud`` = the issuer, ``exp``, and a ``jti`` seen once.
- ``close()``: stops serving (connections are refused from then on: a provider
  that is down).

Every authorization request must carry an S256 ``code_challenge`` (RFC 9700:
PKCE always); a code is bound to it, to the redirect URI and to the client, and is
spent by its first exchange. ``issued`` keeps every id_token handed out, for
replay tests; ``requests`` counts requests per path (``requests["/jwks"]``: key
set fetches).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from .serving import Reply, Request, Served

CLIENT_ID = "authsvc"
CLIENT_SECRET = "rogue-op-test-secret-of-thirty-two-bytes"  # a test secret, nothing real
KID = "rogue-key-1"
TOKEN_WAIT = 120.0  # the longest a held token endpoint waits (a test forgot to release)


ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def _keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """The default signing key, a stranger's key, and a second provider's key
    (generated once per session: RSA key generation is the slow part of a test)."""
    return new_key(), new_key(), new_key()


def spare_key() -> rsa.RSAPrivateKey:
    """A signing key of its own for a second provider in the same test."""
    return _keys()[2]


def stranger_key() -> rsa.RSAPrivateKey:
    """A key no rogue provider publishes."""
    return _keys()[1]


@dataclass(frozen=True)
class RogueUser:
    subject: str = "rogue-user-1"
    email: str = "person@rogue.example"
    email_verified: bool = True


@dataclass
class _Grant:
    user: RogueUser
    redirect_uri: str
    challenge: str
    nonce: str | None
    scope: str


@dataclass
class RogueProvider:
    user: RogueUser = field(default_factory=RogueUser)
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    alg: str = "RS256"
    claims: dict[str, Any] = field(default_factory=dict)
    drop: set[str] = field(default_factory=set)
    iss_response: str | None = ""  # "" means: the issuer
    signing_kid: str | None = None  # None: the published kid
    hold_token: threading.Event | None = None
    now: Callable[[], float] = time.time
    key: rsa.RSAPrivateKey = field(default_factory=lambda: _keys()[0])
    kid: str = KID
    client_key: Any = None  # a public key: the client authenticates by private_key_jwt
    issuer: str = ""
    issued: list[str] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    _codes: dict[str, _Grant] = field(default_factory=dict)
    _tokens: dict[str, RogueUser] = field(default_factory=dict)
    _assertions_seen: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _served: Served | None = None

    def close(self) -> None:
        """Stops serving: from now on a connection to the issuer is refused."""
        if self.hold_token is not None:
            self.hold_token.set()
        if self._served is not None:
            self._served.close()
            self._served = None

    def rotate(self) -> None:
        """A new signing key under a new kid; the old one leaves the JWKS."""
        self.key, self.kid = new_key(), f"rogue-key-{secrets.token_hex(4)}"

    def authorize(self, authorization_url: str) -> str:
        """Requests ``authorization_url`` (this provider's /authorize with the client's
        parameters); returns the redirect back to the client without following it."""
        from .http import Browserless

        answer = Browserless().get(authorization_url)
        assert answer.location, (answer.status, answer.body[:300])
        return answer.location

    def id_token(self, nonce: str | None = None, user: RogueUser | None = None,
                 **claims: Any) -> str:
        """An id_token for ``user`` (default: the one signed in now) as the token
        endpoint would issue it now (bent as configured)."""
        user = user or self.user
        now = int(self.now())
        body: dict[str, Any] = {
            "iss": self.issuer, "sub": user.subject, "aud": self.client_id,
            "azp": self.client_id, "iat": now, "exp": now + 300, "auth_time": now,
            "email": user.email, "email_verified": user.email_verified,
            "amr": ["pwd"]}
        if nonce is not None:
            body["nonce"] = nonce
        body.update(self.claims)
        body.update(claims)
        for name in self.drop:
            body.pop(name, None)
        kid = self.kid if self.signing_kid is None else self.signing_kid
        if self.alg == "none":
            return jwt.encode(body, None, algorithm="none")
        if self.alg == "HS256":
            return jwt.encode(body, self.client_secret, algorithm="HS256", headers={"kid": kid})
        if self.alg == "HS256-public-key":
            return _hs256_by_hand(body, kid, self.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        key = stranger_key() if self.alg == "unknown-key" else self.key
        return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})

    # --- the endpoints -------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        with self._lock:
            self.requests[request.path] = self.requests.get(request.path, 0) + 1
        routes = {
            ("GET", "/.well-known/openid-configuration"): self._discovery,
            ("GET", "/jwks"): self._jwks,
            ("GET", "/authorize"): self._authorize,
            ("POST", "/token"): self._token,
            ("GET", "/userinfo"): self._userinfo,
        }
        route = routes.get((request.method, request.path))
        return route(request) if route else Reply.json({"error": "not_found"}, 404)

    def _discovery(self, _: Request) -> Reply:
        return Reply.json({
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "userinfo_endpoint": self.issuer + "/userinfo",
            "jwks_uri": self.issuer + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported":
                ["private_key_jwt"] if self.client_key is not None
                else ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "email", "profile"],
            "authorization_response_iss_parameter_supported": True,
        })

    def _jwks(self, _: Request) -> Reply:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return Reply.json({"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]})

    def _authorize(self, request: Request) -> Reply:
        q = request.query
        redirect_uri = q.get("redirect_uri", "")
        if q.get("client_id") != self.client_id or not redirect_uri:
            return Reply.json({"error": "invalid_request"}, 400)
        params: dict[str, str] = {}
        if q.get("response_type") != "code" or not q.get("code_challenge") \
                or q.get("code_challenge_method") != "S256":
            params["error"] = "invalid_request"
        else:
            code = secrets.token_urlsafe(24)
            with self._lock:
                self._codes[code] = _Grant(self.user, redirect_uri, q["code_challenge"],
                                           q.get("nonce"), q.get("scope", ""))
            params["code"] = code
        if "state" in q:
            params["state"] = q["state"]
        iss = self.issuer if self.iss_response == "" else self.iss_response
        if iss is not None:
            params["iss"] = iss
        separator = "&" if "?" in redirect_uri else "?"
        return Reply.redirect(redirect_uri + separator + urllib.parse.urlencode(params))

    def _token(self, request: Request) -> Reply:
        if self.hold_token is not None:
            self.hold_token.wait(TOKEN_WAIT)
        if not self._client_authenticated(request):
            return Reply.json({"error": "invalid_client"}, 401)
        form = request.form
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)  # single use
        if form.get("grant_type") != "authorization_code" or grant is None \
                or form.get("redirect_uri") != grant.redirect_uri:
            return Reply.json({"error": "invalid_grant"}, 400)
        computed = base64.urlsafe_b64encode(hashlib.sha256(
            form.get("code_verifier", "").encode()).digest()).rstrip(b"=").decode()
        if not secrets.compare_digest(computed, grant.challenge):
            return Reply.json({"error": "invalid_grant",
                               "error_description": "code_verifier"}, 400)
        access = secrets.token_urlsafe(24)
        token = self.id_token(grant.nonce, grant.user)
        with self._lock:
            self._tokens[access] = grant.user
            self.issued.append(token)
        return Reply.json({"access_token": access, "token_type": "Bearer", "expires_in": 300,
                           "id_token": token, "scope": grant.scope})

    def _client_authenticated(self, request: Request) -> bool:
        form = request.form
        if self.client_key is not None:  # private_key_jwt (RFC 7523), and only that
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                return False
            try:
                claims = jwt.decode(form.get("client_assertion", ""), self.client_key,
                                    algorithms=["RS256", "ES256", "EdDSA"],
                                    audience=self.issuer,
                                    options={"require": ["iss", "sub", "aud", "exp", "jti"]})
            except jwt.PyJWTError:
                return False
            with self._lock:
                if claims["jti"] in self._assertions_seen:
                    return False
                self._assertions_seen.add(claims["jti"])
            return bool(claims["iss"] == claims["sub"] == form.get("client_id")
                        == self.client_id)
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            client_id, secret = urllib.parse.unquote(client_id), urllib.parse.unquote(secret)
        else:
            client_id = form.get("client_id", "")
            secret = form.get("client_secret", "")
        return client_id == self.client_id and secrets.compare_digest(
            secret.encode(), self.client_secret.encode())

    def _userinfo(self, request: Request) -> Reply:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self._lock:
            user = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if user is None:
            return Reply.json({"error": "invalid_token"}, 401)
        return Reply.json({"sub": user.subject, "email": user.email,
                           "email_verified": user.email_verified})


def _hs256_by_hand(claims: dict[str, Any], kid: str, secret: bytes) -> str:
    """An HS256 JWS keyed with ``secret``: PyJWT refuses a PEM key as an HMAC secret
    (the very confusion it guards against), so the attacker's token is made by hand."""
    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = (b64(json.dumps({"alg": "HS256", "kid": kid}).encode()) + b"."
                     + b64(json.dumps(claims).encode()))
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(signature)).decode()


@contextmanager
def running_rogue_provider(user: RogueUser | None = None,
                           **knobs: Any) -> Iterator[RogueProvider]:
    """A rogue provider on a free port of 127.0.0.1; ``knobs`` are RogueProvider's
    fields (client_id, client_secret, key, client_key, ...)."""
    provider = RogueProvider(user or RogueUser(), **knobs)
    provider._served = Served(provider)
    provider.issuer = provider._served.origin
    try:
        yield provider
    finally:
        provider.close()
