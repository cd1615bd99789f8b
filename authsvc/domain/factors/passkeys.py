"""Passkeys: WebAuthn registration and assertion with the ``webauthn`` package.

- **Registration** (bearer): ``begin_registration`` answers creation options
  (a discoverable credential is asked for, so it can sign in without a
  password) and stores the challenge as a single-use ceremony;
  ``finish_registration`` spends the ceremony, verifies the attestation
  ("none" is asked for: authsvc trusts the user's choice of authenticator,
  not a vendor list) against the relying party id and origins, stores the
  credential and answers fresh recovery codes. With a factor already active
  it needs a fresh second factor, as every change to factors does (the door,
  ``transport.door``, checks it at both steps; the claims arrive verified).
  A registration ends every other pending enrolment of the user, and a TOTP
  confirmation ends every unfinished registration.
- **Assertion**, as a second factor (``begin_assertion(mfa_token)`` then
  CompleteSignIn) or passwordless (``begin_assertion()`` then ``sign_in``,
  only with ``AUTHSVC_PASSKEY_SIGN_IN=true``; user verification required; the
  passwordless ceremony writes no row until a credential answers, see
  ``domain.factors.ceremonies``):
  the ceremony is spent, the credential locked, the signature verified, and
  the sign counter must move forward (unless the authenticator keeps none,
  both 0): a counter that did not is a cloned authenticator, refused and
  audited (``factor.passkey_clone_suspected``). The attempt takes its slot in
  the user's code tarpit first, like a TOTP code.
- amr: ``hwk`` for a device-bound credential, ``swk`` for a synced one
  (backed up), after ``pwd`` as a second factor, with ``mfa`` when
  passwordless (the authenticator verified the user).

``webauthn`` (with pyOpenSSL, cbor2 and the ASN.1 modules it loads, ~6 MiB and
~0.1 s per process) is imported by the first ceremony, not at start-up: most
deployments never use passkeys, and every worker would pay for it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass
from typing import Protocol

from ...config import Settings
from ...core.b64 import b64url
from ...core.tokens import AccessClaims
from ...errors import (
    FactorConflict,
    InvalidArgument,
    MfaTokenInvalid,
    NotFound,
    PasskeyInvalid,
    PasskeysDisabled,
    RateLimited,
)
from ...store import events
from ...store import factors as factor_rows
from ...store import passkeys as rows
from ...store import users as user_rows
from ...store.database import Connection, Database
from ..caller import Caller
from ..sessions.opener import INVALID, Failure, Opened, Refused, Sessions
from ..throttling.throttle import Throttle
from ..tokens.issuer import TokenPair
from .attempts import check_passkey_fields
from .ceremonies import SignedCeremonies

log = logging.getLogger(__name__)

CEREMONY_TTL = 300
MAX_NAME = 64
_MAX_ATTEMPTS = 5


def _hash(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def _from_b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


@dataclass(frozen=True, slots=True)
class _Presented:
    """What the assertion JSON says before anything is verified."""

    credential_id: bytes
    sign_count: int
    user_handle: bytes | None


def _presented(credential_json: str, field: str) -> _Presented:
    try:
        parsed = json.loads(credential_json)
        response = parsed["response"]
        credential_id = _from_b64url(parsed["rawId"])
        auth_data = _from_b64url(response["authenticatorData"])
        handle = response.get("userHandle")
        user_handle = _from_b64url(handle) if isinstance(handle, str) and handle else None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InvalidArgument(field, "must be PublicKeyCredential JSON of an assertion") \
            from None
    if len(auth_data) < 37 or not credential_id:
        raise InvalidArgument(field, "must be PublicKeyCredential JSON of an assertion")
    return _Presented(credential_id, int.from_bytes(auth_data[33:37], "big"), user_handle)


class RecoveryCodes(Protocol):
    """``Factors``: a registration answers fresh recovery codes, as every factor added."""

    async def replace_recovery_codes(self, conn: Connection, user_id: str) -> list[str]:
        """In the caller's transaction: ten new recovery codes, the old ones void."""


class Passkeys:
    def __init__(self, db: Database, settings: Settings, factors: RecoveryCodes,
                 throttle: Throttle, sessions: Sessions, ceremonies: SignedCeremonies) -> None:
        self._db = db
        self._ceremonies = ceremonies
        self._factors = factors
        self._throttle = throttle
        self._sessions = sessions
        self._rp_id = settings.webauthn_rp_id
        self._rp_name = settings.webauthn_rp_name
        self._origins = list(settings.webauthn_origins)
        self._sign_in = settings.passkey_sign_in

    def _rp(self) -> str:
        if self._rp_id is None:
            raise PasskeysDisabled()
        return self._rp_id

    # --- registration (claims verified at the door) ---------------------------

    async def begin_registration(self, claims: AccessClaims) -> tuple[str, str]:
        from webauthn import generate_registration_options, options_to_json
        from webauthn.helpers.structs import (
            AttestationConveyancePreference,
            AuthenticatorSelectionCriteria,
            PublicKeyCredentialDescriptor,
            ResidentKeyRequirement,
            UserVerificationRequirement,
        )

        rp_id = self._rp()
        async with self._db.transaction() as conn:
            user = await user_rows.get(conn, claims.user_id)
            if user is None:
                raise NotFound()
            existing = await rows.of_user(conn, user.id)
            account = user.email or user.username or user.phone or user.id
            options = generate_registration_options(
                rp_id=rp_id, rp_name=self._rp_name, user_name=account,
                user_id=uuid.UUID(user.id).bytes, user_display_name=account,
                attestation=AttestationConveyancePreference.NONE,
                authenticator_selection=AuthenticatorSelectionCriteria(
                    resident_key=ResidentKeyRequirement.REQUIRED,
                    user_verification=UserVerificationRequirement.PREFERRED),
                exclude_credentials=[PublicKeyCredentialDescriptor(id=c.id)
                                     for c in existing])
            ceremony_id = b64url(os.urandom(32))
            await rows.open_ceremony(conn, _hash(ceremony_id), "register", user.id, None,
                                     options.challenge, CEREMONY_TTL)
        return ceremony_id, options_to_json(options)

    async def finish_registration(self, claims: AccessClaims, ceremony_id: str,
                                  credential_json: str, name: str, caller: Caller,
                                  ) -> tuple[str, list[str]]:
        from webauthn import verify_registration_response
        from webauthn.helpers.exceptions import WebAuthnException

        rp_id = self._rp()
        check_passkey_fields(ceremony_id, credential_json)
        name = name.strip()
        if len(name) > MAX_NAME:
            raise InvalidArgument("name", f"must be at most {MAX_NAME} characters")
        codes: list[str] = []
        outcome, credential_id = "invalid", b""
        async with self._db.transaction() as conn:
            await factor_rows.lock_pending_totp(conn, claims.user_id)
            ceremony = await rows.take_ceremony(conn, _hash(ceremony_id), "register")
            if ceremony is not None and ceremony.user_id == claims.user_id:
                try:
                    verified = verify_registration_response(
                        credential=credential_json, expected_challenge=ceremony.challenge,
                        expected_rp_id=rp_id, expected_origin=self._origins)
                except (WebAuthnException, ValueError, KeyError, TypeError):
                    verified = None
                if verified is not None and await rows.insert(
                        conn, verified.credential_id, claims.user_id,
                        verified.credential_public_key, verified.sign_count,
                        verified.credential_backed_up, name or "passkey"):
                    outcome, credential_id = "ok", verified.credential_id
                    codes = await self._factors.replace_recovery_codes(conn, claims.user_id)
                    await factor_rows.end_pending_enrolments(conn, claims.user_id)
                    await events.record(conn, "factor.passkey_registered",
                                        user_id=claims.user_id, session_id=claims.session_id,
                                        **caller.audit())
        if outcome != "ok":
            raise PasskeyInvalid()
        return b64url(credential_id), codes

    async def list(self, claims: AccessClaims) -> list[rows.Credential]:
        async with self._db.connection() as conn:
            return await rows.of_user(conn, claims.user_id)

    async def remove(self, claims: AccessClaims, credential_id: str, caller: Caller) -> None:
        if not credential_id:
            raise InvalidArgument("credential_id", "must not be empty")
        try:
            raw = _from_b64url(credential_id)
        except ValueError:
            raise InvalidArgument("credential_id", "must be base64url") from None
        async with self._db.transaction() as conn:
            removed = await rows.remove(conn, claims.user_id, raw)
            if removed:
                if not (await factor_rows.summary(conn, claims.user_id)).any:
                    await factor_rows.remove_recovery_codes(conn, claims.user_id)
                await events.record(conn, "factor.passkey_removed", user_id=claims.user_id,
                                    session_id=claims.session_id, **caller.audit())
        if not removed:
            raise NotFound("No such passkey.")

    # --- assertion ---------------------------------------------------------

    async def begin_assertion(self, mfa_token: str) -> tuple[str, str]:
        from webauthn import generate_authentication_options, options_to_json
        from webauthn.helpers.structs import (
            PublicKeyCredentialDescriptor,
            UserVerificationRequirement,
        )

        rp_id = self._rp()
        if not mfa_token:  # passwordless: nothing is written until a credential answers
            if not self._sign_in:
                raise PasskeysDisabled("Passwordless sign-in with passkeys is not "
                                       "enabled (AUTHSVC_PASSKEY_SIGN_IN).")
            signed = self._ceremonies.open()
            options = generate_authentication_options(
                rp_id=rp_id, challenge=signed.challenge,
                user_verification=UserVerificationRequirement.REQUIRED)
            return signed.ceremony_id, options_to_json(options)
        ceremony_id = b64url(os.urandom(32))
        async with self._db.transaction() as conn:
            if len(mfa_token) > 128:
                raise InvalidArgument("mfa_token", "must be at most 128 characters")
            mfa_hash = _hash(mfa_token)
            user_id = await factor_rows.live_challenge_user(conn, mfa_hash, _MAX_ATTEMPTS)
            if user_id is None:
                raise MfaTokenInvalid()
            credentials = await rows.of_user(conn, user_id)
            if not credentials:
                raise FactorConflict("This user has no passkey.")
            options = generate_authentication_options(
                rp_id=rp_id,
                allow_credentials=[PublicKeyCredentialDescriptor(id=c.id)
                                   for c in credentials],
                user_verification=UserVerificationRequirement.PREFERRED)
            await rows.open_ceremony(conn, _hash(ceremony_id), "second_factor", user_id,
                                     mfa_hash, options.challenge, CEREMONY_TTL)
        return ceremony_id, options_to_json(options)

    async def check(self, conn: Connection, user_id: str, mfa_hash: bytes,
                    ceremony_id: str, credential_json: str, caller: Caller,
                    ) -> tuple[str | None, float | None]:
        """As ``Factors.check``, for a passkey presented as the second factor of the
        sign-in whose mfa_token hashes to ``mfa_hash``; in the caller's transaction."""
        rp_id = self._rp()
        presented = _presented(credential_json, "passkey.credential_json")
        wait = await self._throttle.reserve_code(conn, user_id)
        if wait is not None:
            return None, wait
        ceremony = await rows.take_ceremony(conn, _hash(ceremony_id), "second_factor")
        if ceremony is None or ceremony.user_id != user_id or ceremony.mfa_hash != mfa_hash:
            return None, None
        amr = await self._verify(conn, rp_id, ceremony.challenge, presented, credential_json,
                                 user_id, require_uv=False, caller=caller)
        if amr is None:
            return None, None
        await self._throttle.code_succeeded(conn, user_id)
        return amr, None

    async def sign_in(self, ceremony_id: str, credential_json: str, caller: Caller,
                      ) -> TokenPair:
        """Passwordless: a session for the user whose discoverable passkey answered,
        opened by ``Sessions`` with amr ``hwk``/``swk`` + ``mfa``."""
        rp_id = self._rp()
        if not self._sign_in:
            raise PasskeysDisabled("Passwordless sign-in with passkeys is not enabled "
                                   "(AUTHSVC_PASSKEY_SIGN_IN).")
        check_passkey_fields(ceremony_id, credential_json, prefix="assertion.")
        presented = _presented(credential_json, "assertion.credential_json")
        async with self._db.transaction() as conn:
            outcome = await self._sign_in_with(conn, rp_id, ceremony_id, presented,
                                               credential_json, caller)
        if isinstance(outcome, Refused):
            if outcome.failure is Failure.THROTTLED:
                raise RateLimited(outcome.retry_after)
            raise PasskeyInvalid()
        return await self._sessions.issue(outcome)

    async def _sign_in_with(self, conn: Connection, rp_id: str, ceremony_id: str,
                            presented: _Presented, credential_json: str, caller: Caller,
                            ) -> Opened | Refused:
        ceremony = self._ceremonies.read(ceremony_id)
        if ceremony is None or not await rows.spend_signed_ceremony(
                conn, _hash(ceremony_id), ceremony.challenge, ceremony.expires_at):
            return INVALID
        credential = await rows.lock(conn, presented.credential_id)
        if credential is None:
            return INVALID
        user_id = credential.user_id
        wait = await self._throttle.reserve_code(conn, user_id)
        if wait is not None:
            return Refused.throttled(wait)
        kind = await self._verify(conn, rp_id, ceremony.challenge, presented,
                                  credential_json, user_id, require_uv=True, caller=caller)
        user = await user_rows.get(conn, user_id) if kind else None
        if kind is None or user is None:
            return INVALID
        scopes = await user_rows.still_signing_in(conn, user_id, user.credentials_version)
        if scopes is None:
            return INVALID
        await self._throttle.code_succeeded(conn, user_id)
        return await self._sessions.open(conn, user_id=user_id, scopes=scopes,
                                         amr=(kind, "mfa"), caller=caller, reason="passkey")

    async def _verify(self, conn: Connection, rp_id: str, challenge: bytes,
                      presented: _Presented, credential_json: str, user_id: str, *,
                      require_uv: bool, caller: Caller) -> str | None:
        """The amr value of a verified assertion by one of ``user_id``'s passkeys (its
        counter moved on in the database), or None."""
        from webauthn import verify_authentication_response
        from webauthn.helpers.exceptions import WebAuthnException

        credential = await rows.lock(conn, presented.credential_id)
        if credential is None or credential.user_id != user_id:
            return None
        if presented.user_handle is not None and \
                presented.user_handle != uuid.UUID(user_id).bytes:
            return None
        try:
            # The counter is judged below, after the signature, so that only a real
            # authenticator's answer can raise the clone alarm.
            verified = verify_authentication_response(
                credential=credential_json, expected_challenge=challenge,
                expected_rp_id=rp_id, expected_origin=self._origins,
                credential_public_key=credential.public_key,
                credential_current_sign_count=0, require_user_verification=require_uv)
        except (WebAuthnException, ValueError, KeyError, TypeError):
            return None
        count = verified.new_sign_count
        if (count > 0 or credential.sign_count > 0) and count <= credential.sign_count:
            log.warning("passkey sign counter went backwards; cloned authenticator?")
            await events.record(conn, "factor.passkey_clone_suspected", user_id=user_id,
                                reason=f"counter {count} after {credential.sign_count}",
                                **caller.audit())
            return None
        await rows.used(conn, credential.id, count, verified.credential_backed_up)
        return "swk" if verified.credential_backed_up else "hwk"
