"""Signing in with another identity provider, and linking its identities.

- **start** (public; or ``start_link`` for a signed-in caller, whom the door
  made show a fresh second factor when they have one): a flow with a random
  ``nonce``, PKCE S256 (authsvc makes the verifier, or a native app sends its
  own challenge) and a random ``flow_id`` that binds the flow to its starter
  (the gateway puts it in an HttpOnly cookie; an app keeps it). Start writes
  nothing: the flow, with the hash of its flow_id and its expiry, travels
  encrypted in ``state`` (``state.SealedFlows``). The answer is the provider's
  authorization URL.
- **finish** (public): a state this service did not seal, or that was altered,
  is refused before the database is asked. Then the flow is spent first, in one
  INSERT … ON CONFLICT DO NOTHING of its hash that also judges its expiry by
  ``now()``, so a replayed callback is refused; then the flow_id
  must match (a state alone, which travels in URLs, signs no one in), the
  provider must be the flow's, RFC 9207's ``iss`` must be the provider's when
  it sends one or advertises that it does (mix-up defence), and the code is
  exchanged with the flow's verifier (``providers.ProviderClient`` checks the
  rest). Then, in one transaction:

  - a known identity (the provider's ``sub``, never its e-mail, is the key)
    signs its user in;
  - an unknown one whose e-mail belongs to an account is linked to it only
    when the provider asserts the e-mail verified **and** the account's e-mail
    is verified (``email_verified_at``); otherwise ``IdentityLinkRequired``:
    the person signs in to that account and links the identity from there;
  - else a user is created (``AUTHSVC_SIGNUP=open``; with ``verify`` only when
    the provider asserts a verified e-mail, which stands in for authsvc's
    code; ``off`` refuses) without a password, with the e-mail only when it is
    verified (an unverified one would lock its real owner out of signing up).

  The session is opened by ``Sessions`` with amr ``fed`` (audit
  ``signin.success`` reason ``provider:ID``); a user with a second factor gets
  MFA_REQUIRED, unless the provider is configured to be trusted for MFA by its
  ``acr`` (``trust_acr``), when the amr is ``fed mfa``. No password is hashed.
  A link flow instead links the identity to the flow's user (refused when it
  belongs to another; the flow is invalid when that user was deleted since).
  Every link, unlink and refusal is an audit row.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import Protocol

from ...core.b64 import b64url
from ...core.tokens import AccessClaims
from ...errors import (
    FederationFlowInvalid,
    IdentifierNotVerified,
    IdentityAlreadyLinked,
    IdentityLinkRequired,
    InvalidArgument,
    InvalidCredentials,
    LastSignInMethod,
    NotFound,
    ProviderResponseInvalid,
    ProviderUnknown,
    SignUpDisabled,
)
from ...store import events
from ...store import identities as rows
from ...store import users as user_rows
from ...store.database import Connection, Database
from ..caller import Caller
from ..sessions.opener import Opened, SecondFactorRequired, Sessions
from ..tokens.issuer import TokenPair
from .client import Asserted, ProviderClient
from .providers import Provider
from .state import MAX_STATE, SealedFlows, s256

__all__ = ["MAX_STATE", "Federation", "Finished", "Started", "redirect_allowed", "s256"]

MAX_PARAM = 2048
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


class AvailableFactors(Protocol):
    async def available(self, conn: Connection, user_id: str) -> tuple[str, ...]:
        """The second factors the user can complete a sign-in with; () for none."""


@dataclass(frozen=True, slots=True)
class Started:
    """A started flow; its fields are those of StartProviderSignIn's and
    LinkIdentity's responses, by the same names."""

    authorization_url: str
    flow_id: str
    state: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class Finished:
    """A finished flow: the tokens (None for a link), where to go next, and whether
    a user was created."""

    tokens: TokenPair | None
    redirect_to: str | None
    created: bool = False


def _random() -> str:
    return b64url(os.urandom(32))


def _hash(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def redirect_allowed(target: str, allowed: tuple[str, ...]) -> bool:
    """Whether ``target`` is an absolute http(s) URL on an allowed origin, under the
    entry's path when it has one (whole path segments: ``/app`` allows ``/app`` and
    ``/app/x``, never ``/apple``). No userinfo, no backslashes or control characters,
    which browsers read differently from parsers."""
    if any(c in target for c in "\\\r\n\t") or any(ord(c) < 0x20 for c in target):
        return False
    parts = urllib.parse.urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return False
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    for entry in allowed:
        wanted = urllib.parse.urlsplit(entry)
        if origin != f"{wanted.scheme}://{wanted.netloc}".lower():
            continue
        prefix = wanted.path.rstrip("/")
        if not prefix or parts.path == prefix or parts.path.startswith(prefix + "/"):
            return True
    return False


def _field(value: str, name: str, *, required: bool = True, limit: int = MAX_PARAM) -> str:
    if required and not value:
        raise InvalidArgument(name, "must not be empty")
    if len(value) > limit:
        raise InvalidArgument(name, f"must be at most {limit} characters")
    return value


class Federation:
    def __init__(self, db: Database, providers: dict[str, Provider], client: ProviderClient,
                 sessions: Sessions, factors: AvailableFactors, *, signup: str,
                 redirect_origins: tuple[str, ...], flows: SealedFlows,
                 passkeys_sign_in: bool) -> None:
        self._db = db
        self._providers = providers
        self._client = client
        self._sessions = sessions
        self._factors = factors
        self._signup = signup
        self._origins = redirect_origins
        self._flows = flows
        self._passkeys_sign_in = passkeys_sign_in

    def _provider(self, provider_id: str) -> Provider:
        _field(provider_id, "provider")
        provider = self._providers.get(provider_id)
        if provider is None:
            raise ProviderUnknown()
        return provider

    async def start(self, provider_id: str, redirect_uri: str, code_challenge: str,
                    redirect_to: str, *, link_user_id: str | None = None) -> Started:
        provider = self._provider(provider_id)
        redirect_uri = _field(redirect_uri, "redirect_uri", required=False) \
            or provider.redirect_uris[0]
        if redirect_uri not in provider.redirect_uris:
            raise InvalidArgument("redirect_uri", "is not one of the provider's redirect_uris")
        if code_challenge and not _CHALLENGE.fullmatch(code_challenge):
            raise InvalidArgument("code_challenge", "must be a PKCE S256 challenge "
                                  "(43 base64url characters)")
        _field(redirect_to, "redirect_to", required=False)
        if len(redirect_to.encode()) > MAX_PARAM:  # it travels in the state: bytes count
            raise InvalidArgument("redirect_to", f"must be at most {MAX_PARAM} bytes (UTF-8)")
        if redirect_to and not redirect_allowed(redirect_to, self._origins):
            raise InvalidArgument("redirect_to", "is not an allowed origin "
                                  "(AUTHSVC_REDIRECT_ORIGINS)")
        flow_id = _random()
        state, flow = self._flows.start(
            provider=provider.id, binding_hash=_hash(flow_id),
            app_challenge=code_challenge or None,
            redirect_uri_index=provider.redirect_uris.index(redirect_uri),
            redirect_to=redirect_to or None, link_user_id=link_user_id)
        url = await self._client.authorization_url(provider, state=state, nonce=flow.nonce,
                                                   challenge=flow.challenge,
                                                   redirect_uri=redirect_uri)
        return Started(url, flow_id, state, self._flows.ttl)

    async def start_link(self, claims: AccessClaims, provider_id: str, redirect_uri: str,
                         code_challenge: str, redirect_to: str) -> Started:
        return await self.start(provider_id, redirect_uri, code_challenge, redirect_to,
                                link_user_id=claims.user_id)

    async def finish(self, provider_id: str, flow_id: str, state: str, code: str, iss: str,
                     code_verifier: str, error: str, caller: Caller,
                     ) -> Finished | SecondFactorRequired:
        provider = self._provider(provider_id)
        _field(flow_id, "flow_id")
        _field(state, "state", limit=MAX_STATE)
        for value, name in ((code, "code"), (iss, "iss"), (code_verifier, "code_verifier"),
                            (error, "error")):
            _field(value, name, required=False)
        if code_verifier and not _VERIFIER.fullmatch(code_verifier):
            raise InvalidArgument("code_verifier", "must be 43 to 128 unreserved characters")
        opened = self._flows.open(state)
        if opened is None:  # not sealed here: a public call must not fill the audit log
            raise FederationFlowInvalid()
        flow = opened.flow
        async with self._db.connection() as conn:
            if not await rows.spend_flow(conn, opened.state_hash, flow.expires_at):
                raise FederationFlowInvalid()  # spent before, or expired
            if flow.provider != provider.id or not hmac.compare_digest(flow.binding_hash,
                                                                       _hash(flow_id)):
                await events.record(conn, "federation.refused", reason=f"binding:{flow.provider}",
                                    **caller.audit())
                raise FederationFlowInvalid()
        if flow.redirect_uri_index >= len(provider.redirect_uris):
            raise FederationFlowInvalid()  # the provider's redirect_uris changed since
        redirect_uri = provider.redirect_uris[flow.redirect_uri_index]
        if error:
            await self._refused("provider_error", provider, caller)
            raise ProviderResponseInvalid()
        _field(code, "code")
        endpoints = await self._client.endpoints(provider)
        if (iss and iss != endpoints.issuer) or (not iss and endpoints.iss_required):
            await self._refused("iss", provider, caller)
            raise FederationFlowInvalid()
        verifier = flow.verifier
        if verifier is None:
            if not code_verifier or not hmac.compare_digest(s256(code_verifier),
                                                            flow.challenge):
                await self._refused("code_verifier", provider, caller)
                raise FederationFlowInvalid()
            verifier = code_verifier
        try:
            asserted = await self._client.sign_in(provider, code=code, verifier=verifier,
                                                  redirect_uri=redirect_uri,
                                                  nonce=flow.nonce)
        except ProviderResponseInvalid:
            await self._refused("provider_response", provider, caller)
            raise
        if flow.link_user_id is not None:
            await self._link(provider, asserted, flow.link_user_id, caller)
            return Finished(None, flow.redirect_to)
        return await self._sign_in(provider, asserted, flow.redirect_to, caller)

    async def _refused(self, reason: str, provider: Provider, caller: Caller) -> None:
        async with self._db.connection() as conn:
            await events.record(conn, "federation.refused", reason=f"{reason}:{provider.id}",
                                **caller.audit())

    async def _link(self, provider: Provider, asserted: Asserted, user_id: str,
                    caller: Caller) -> None:
        async with self._db.transaction() as conn:
            if not await rows.hold_user(conn, user_id):
                raise FederationFlowInvalid()  # the flow's user was deleted since its start
            owner = await rows.link(conn, provider.id, asserted.subject, user_id,
                                    asserted.email)
            if owner == user_id:
                await events.record(conn, "identity.linked", reason=provider.id,
                                    user_id=user_id, **caller.audit())
        if owner != user_id:
            await self._refused("linked_elsewhere", provider, caller)
            raise IdentityAlreadyLinked()

    async def _sign_in(self, provider: Provider, asserted: Asserted, redirect_to: str | None,
                       caller: Caller) -> Finished | SecondFactorRequired:
        refusal: Exception | None = None
        created = False
        async with self._db.transaction() as conn:
            owner = await rows.owner(conn, provider.id, asserted.subject)
            if owner is None:  # queue behind a concurrent first sign-in, then look again
                await rows.lock_identity(conn, provider.id, asserted.subject)
                owner = await rows.owner(conn, provider.id, asserted.subject)
            if owner is None:
                outcome = await self._first_sign_in(conn, provider, asserted, caller)
                if isinstance(outcome, Exception):
                    refusal = outcome
                else:
                    created = outcome
                    owner = await rows.owner(conn, provider.id, asserted.subject)
            opened: Opened | SecondFactorRequired | None = None
            if owner is not None:
                opened = await self._open(conn, provider, asserted, owner, caller)
        if refusal is not None:
            raise refusal
        match opened:
            case SecondFactorRequired():
                return opened
            case Opened():
                return Finished(await self._sessions.issue(opened), redirect_to, created)
        raise InvalidCredentials()

    async def _first_sign_in(self, conn: Connection, provider: Provider, asserted: Asserted,
                             caller: Caller) -> bool | Exception:
        """Link to the account of a verified e-mail, or create a user (True); the
        refusal otherwise (its audit row written, the transaction kept)."""
        existing = None
        if asserted.email is not None:
            existing = await rows.user_by_email(conn, asserted.email)
        if existing is not None:
            user_id, account_verified = existing
            if not (asserted.email_verified and account_verified):
                await events.record(conn, "federation.refused",
                                    reason=f"link_required:{provider.id}", user_id=user_id,
                                    **caller.audit())
                return IdentityLinkRequired()
            await rows.link(conn, provider.id, asserted.subject, user_id, asserted.email)
            await events.record(conn, "identity.linked",
                                reason=f"{provider.id}:verified_email", user_id=user_id,
                                **caller.audit())
            return False
        if self._signup == "off":
            return SignUpDisabled()
        if self._signup == "verify" and not asserted.email_verified:
            return IdentifierNotVerified()
        created = await rows.create_user(
            conn, asserted.email if asserted.email_verified else None)
        if created is None:  # the e-mail was taken since it was looked up
            return IdentityLinkRequired()
        await rows.link(conn, provider.id, asserted.subject, created, asserted.email)
        await events.record(conn, "identity.linked", reason=f"{provider.id}:signup",
                            user_id=created, **caller.audit())
        return True

    async def _open(self, conn: Connection, provider: Provider, asserted: Asserted,
                    owner: rows.Owner, caller: Caller) -> Opened | SecondFactorRequired | None:
        scopes = await user_rows.still_signing_in(conn, owner.user_id,
                                                  owner.credentials_version)
        if scopes is None:
            await events.record(conn, "signin.failure", reason=f"disabled:{provider.id}",
                                user_id=owner.user_id, **caller.audit())
            return None
        trusted = asserted.acr is not None and asserted.acr in provider.trust_acr
        if not trusted:
            factors = await self._factors.available(conn, owner.user_id)
            if factors:
                return await self._sessions.hold(
                    conn, user_id=owner.user_id, credentials_version=owner.credentials_version,
                    factors=factors, caller=caller, first_factor="fed")
        return await self._sessions.open(conn, user_id=owner.user_id, scopes=scopes,
                                         amr=("fed", "mfa") if trusted else ("fed",),
                                         caller=caller, reason=f"provider:{provider.id}")

    async def unlink(self, claims: AccessClaims, provider_id: str, subject: str,
                     caller: Caller) -> None:
        _field(provider_id, "provider")
        _field(subject, "subject")
        async with self._db.transaction() as conn:
            result = await rows.unlink_unless_last(conn, claims.user_id, provider_id, subject,
                                                   passkeys_sign_in=self._passkeys_sign_in)
            if result == "removed":
                await events.record(conn, "identity.unlinked", reason=provider_id,
                                    user_id=claims.user_id, session_id=claims.session_id,
                                    **caller.audit())
        if result == "missing":
            raise NotFound("No such identity is linked to this account.")
        if result == "last":
            raise LastSignInMethod()

    async def list(self, claims: AccessClaims) -> list[rows.Identity]:
        async with self._db.connection() as conn:
            return await rows.of_user(conn, claims.user_id)

    async def forget_expired(self) -> int:
        """Forget spent flows past their expiry (the expiry alone refuses them now)."""
        async with self._db.connection() as conn:
            return await rows.forget_spent_flows(conn)
