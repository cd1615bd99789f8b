"""The exceptions authsvc raises, one root with narrow subclasses.

Every error a client can cause carries a stable ``reason`` (the
``google.rpc.ErrorInfo`` reason the transport sends). The reasons are declared
once, as the ``authsvc.v1.ErrorReason`` enum (protos/authsvc/v1/error_reason.proto):
a class's ``reason`` is the name of one of its values, which is the string on the
wire; the Go gateway and the TypeScript client take theirs from the same enum.
Configuration faults are a separate branch: they stop start-up and never reach
a client.
"""

from __future__ import annotations

from authsvc.v1.error_reason_pb2 import ErrorReason


def _reason(value: ErrorReason.ValueType) -> str:
    """The wire string of a reason: the name of its ``ErrorReason`` value."""
    return ErrorReason.Name(value)


class AuthsvcError(Exception):
    """Root of every exception authsvc raises on purpose."""


class ConfigError(AuthsvcError):
    """A setting is missing or invalid; the message names the variable."""


class ClientError(AuthsvcError):
    """Something the caller sent or holds is not acceptable.

    ``message`` is fixed text chosen here, never user input, so the transport
    may send it as it is.
    """

    reason = _reason(ErrorReason.CLIENT_ERROR)
    message = "The request was refused."
    # Sent as the ErrorInfo's metadata: values chosen here, never user input.
    metadata: dict[str, str] = {}  # read only: instances that send some replace it

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)


class InvalidArgument(ClientError):
    """A field is missing, malformed or too large."""

    reason = _reason(ErrorReason.INVALID_ARGUMENT)

    def __init__(self, field: str, description: str) -> None:
        self.field = field
        self.description = description
        super().__init__(f"{field}: {description}")


class AlreadyExists(ClientError):
    """An identifier is already taken by another user."""

    reason = _reason(ErrorReason.ALREADY_EXISTS)

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"{field}: already taken by another user")


class NotFound(ClientError):
    """The user or object named does not exist (administration paths only)."""

    reason = _reason(ErrorReason.NOT_FOUND)
    message = "No such user."


class Unauthenticated(ClientError):
    """The caller's credentials do not hold.

    ``error`` is the RFC 6750 error code for the ``WWW-Authenticate``
    challenge (``None`` when no credentials were sent at all).
    """

    error: str | None = "invalid_token"
    # Extra RFC 6750 auth-params of the challenge (name, fixed value).
    challenge_params: tuple[tuple[str, str], ...] = ()


class InvalidCredentials(Unauthenticated):
    reason = _reason(ErrorReason.INVALID_CREDENTIALS)
    message = "The identifier or password is wrong."
    error = None


class IdentifierNotVerified(Unauthenticated):
    """The password was right, but the account's email or phone is not verified yet
    (said only to someone who knows the password)."""

    reason = _reason(ErrorReason.IDENTIFIER_NOT_VERIFIED)
    message = "The account's email or phone number is not verified yet."
    error = None


class CodeExpired(Unauthenticated):
    """The code was right but its lifetime (AUTHSVC_CODE_TTL) is over."""

    reason = _reason(ErrorReason.CODE_EXPIRED)
    message = "The code expired; ask for a new one."
    error = None


class SignUpDisabled(ClientError):
    """SignUp while AUTHSVC_SIGNUP is off."""

    reason = _reason(ErrorReason.SIGNUP_DISABLED)
    message = "Sign-up is disabled on this service."


class TokenMissing(Unauthenticated):
    reason = _reason(ErrorReason.TOKEN_MISSING)
    message = "No access token was sent."
    error = None


class TokenInvalid(Unauthenticated):
    reason = _reason(ErrorReason.TOKEN_INVALID)
    message = "The access token is invalid."


class TokenExpired(Unauthenticated):
    reason = _reason(ErrorReason.TOKEN_EXPIRED)
    message = "The access token expired."


class TokenRevoked(Unauthenticated):
    reason = _reason(ErrorReason.TOKEN_REVOKED)
    message = "The access token's session was revoked."


class RefreshTokenInvalid(Unauthenticated):
    reason = _reason(ErrorReason.REFRESH_TOKEN_INVALID)
    message = "The refresh token is invalid, expired or revoked."


class RefreshTokenReused(Unauthenticated):
    reason = _reason(ErrorReason.REFRESH_TOKEN_REUSED)
    message = "The refresh token was already used; its session is revoked."


class MfaRequired(Unauthenticated):
    """The password was right; the sign-in needs a second factor (``CompleteSignIn``
    with the ``mfa_token`` of the ErrorInfo metadata)."""

    reason = _reason(ErrorReason.MFA_REQUIRED)
    message = "A second factor is required to complete this sign-in."
    error = None

    def __init__(self, mfa_token: str, factors: tuple[str, ...], expires_in: int) -> None:
        self.metadata = {"mfa_token": mfa_token, "factors": " ".join(factors),
                         "expires_in": str(expires_in)}
        super().__init__()


class MfaTokenInvalid(Unauthenticated):
    reason = _reason(ErrorReason.MFA_TOKEN_INVALID)
    message = "The mfa_token is unknown, expired or spent; sign in again."
    error = None


class CodeInvalid(Unauthenticated):
    """A one-time or recovery code is wrong, already used, or out of its window; also a
    verification or reset code that is wrong, used, replaced by a newer one, out of
    tries, or was never sent (one answer for all of them)."""

    reason = _reason(ErrorReason.CODE_INVALID)
    message = "The code is wrong or was already used."
    error = None


class InsufficientUserAuthentication(Unauthenticated):
    """RFC 9470: the token is valid, but its user authenticated too weakly or too long
    ago for this method; the challenge says what would do (``acr_values``,
    ``max_age``), the ErrorInfo metadata names the amr values accepted."""

    reason = _reason(ErrorReason.INSUFFICIENT_USER_AUTHENTICATION)
    message = "A stronger or more recent authentication is required."
    error = "insufficient_user_authentication"

    def __init__(self, amr: tuple[str, ...] = (), max_age: int | None = None) -> None:
        self.amr = amr
        self.max_age = max_age
        params: list[tuple[str, str]] = []
        metadata: dict[str, str] = {}
        if amr:
            params.append(("acr_values", "aal2"))
            metadata["amr"] = " ".join(amr)
        if max_age is not None:
            params.append(("max_age", str(max_age)))
            metadata["max_age"] = str(max_age)
        self.challenge_params = tuple(params)
        self.metadata = metadata
        super().__init__()


class FactorConflict(ClientError):
    """The factor is already active (EnrollTotp), or there is none to act on."""

    reason = _reason(ErrorReason.FACTOR_CONFLICT)

    def __init__(self, message: str) -> None:
        super().__init__(message)


class PasskeyInvalid(Unauthenticated):
    """A passkey's registration or assertion did not verify: wrong challenge, origin
    or signature, an unknown credential, or a sign counter that did not move forward
    (a cloned authenticator)."""

    reason = _reason(ErrorReason.PASSKEY_INVALID)
    message = "The passkey could not be verified."
    error = None


class PasskeysDisabled(ClientError):
    """Passkeys (or passwordless sign-in with them) are not switched on."""

    reason = _reason(ErrorReason.PASSKEYS_DISABLED)
    message = "Passkeys are not enabled on this server."


class PermissionDenied(ClientError):
    """The caller is authenticated but lacks a required scope."""

    reason = _reason(ErrorReason.INSUFFICIENT_SCOPE)
    message = "The access token lacks a required scope."

    def __init__(self, scopes: tuple[str, ...] = ()) -> None:
        self.scopes = scopes
        super().__init__()


class RateLimited(ClientError):
    """Too many attempts; try again after ``retry_after`` seconds."""

    reason = _reason(ErrorReason.RATE_LIMITED)
    message = "Too many attempts; try again later."

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__()


class FederationFlowInvalid(Unauthenticated):
    """A provider sign-in's flow is unknown, expired or spent, or the callback does
    not belong to it (flow_id, state, provider, RFC 9207 ``iss``)."""

    reason = _reason(ErrorReason.FEDERATION_FLOW_INVALID)
    message = "The sign-in with the provider is unknown, expired or already used; start again."
    error = None


class ProviderResponseInvalid(Unauthenticated):
    """The identity provider's answer did not verify, or it refused the sign-in."""

    reason = _reason(ErrorReason.PROVIDER_RESPONSE_INVALID)
    message = "The identity provider's answer could not be verified."
    error = None


class ProviderUnavailable(ClientError):
    """The identity provider did not answer in time, or failed (UNAVAILABLE, with
    this reason so a client can tell it from authsvc's own outage)."""

    reason = _reason(ErrorReason.PROVIDER_UNAVAILABLE)
    message = "The identity provider is not answering; try again later."


class IdentityLinkRequired(ClientError):
    """An account with the provider's e-mail exists, and the e-mail is not verified
    on both sides: the person signs in and links the identity explicitly."""

    reason = _reason(ErrorReason.IDENTITY_LINK_REQUIRED)
    message = ("An account with this e-mail exists; sign in to it and link this "
               "identity from there.")


class IdentityAlreadyLinked(AlreadyExists):
    """The provider identity is linked to another user."""

    reason = _reason(ErrorReason.IDENTITY_ALREADY_LINKED)

    def __init__(self) -> None:
        super().__init__("identity")


class LastSignInMethod(ClientError):
    """Unlinking would leave the user no way to sign in."""

    reason = _reason(ErrorReason.LAST_SIGN_IN_METHOD)
    message = "This is the account's last way to sign in; it cannot be removed."


class ProviderUnknown(NotFound):
    """No identity provider with that id is configured."""

    reason = _reason(ErrorReason.PROVIDER_UNKNOWN)
    message = "No such identity provider."


class Unavailable(AuthsvcError):
    """A dependency (the database, the revocation feed) cannot be reached.

    Not the client's fault; the transport answers UNAVAILABLE so the client
    may retry.
    """


class DatabaseUnreachable(Unavailable):
    """Start-up or the CLI could not reach the configured database; the message
    says where it points (never the password) and what to check."""
