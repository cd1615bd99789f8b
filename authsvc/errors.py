"""The exceptions authsvc raises, one root with narrow subclasses.

Every error a client can cause carries a stable ``reason`` (the
``google.rpc.ErrorInfo`` reason the transport sends). Configuration faults
are a separate branch: they stop start-up and never reach a client.
"""

from __future__ import annotations


class AuthsvcError(Exception):
    """Root of every exception authsvc raises on purpose."""


class ConfigError(AuthsvcError):
    """A setting is missing or invalid; the message names the variable."""


class ClientError(AuthsvcError):
    """Something the caller sent or holds is not acceptable.

    ``message`` is fixed text chosen here, never user input, so the transport
    may send it as it is.
    """

    reason = "CLIENT_ERROR"
    message = "The request was refused."

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)


class InvalidArgument(ClientError):
    """A field is missing, malformed or too large."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, description: str) -> None:
        self.field = field
        self.description = description
        super().__init__(f"{field}: {description}")


class AlreadyExists(ClientError):
    """An identifier is already taken by another user."""

    reason = "ALREADY_EXISTS"

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"{field}: already taken by another user")


class NotFound(ClientError):
    """The user or object named does not exist (administration paths only)."""

    reason = "NOT_FOUND"
    message = "No such user."


class Unauthenticated(ClientError):
    """The caller's credentials do not hold.

    ``error`` is the RFC 6750 error code for the ``WWW-Authenticate``
    challenge (``None`` when no credentials were sent at all).
    """

    error: str | None = "invalid_token"


class InvalidCredentials(Unauthenticated):
    reason = "INVALID_CREDENTIALS"
    message = "The identifier or password is wrong."
    error = None


class IdentifierNotVerified(Unauthenticated):
    """The password was right, but the account's email or phone is not verified yet
    (said only to someone who knows the password)."""

    reason = "IDENTIFIER_NOT_VERIFIED"
    message = "The account's email or phone number is not verified yet."
    error = None


class CodeInvalid(Unauthenticated):
    """A verification or reset code that is wrong, used, replaced by a newer one,
    out of tries, or was never sent (one answer for all of them)."""

    reason = "CODE_INVALID"
    message = "The code is wrong or no longer valid."
    error = None


class CodeExpired(Unauthenticated):
    """The code was right but its lifetime (AUTHSVC_CODE_TTL) is over."""

    reason = "CODE_EXPIRED"
    message = "The code expired; ask for a new one."
    error = None


class SignUpDisabled(ClientError):
    """SignUp while AUTHSVC_SIGNUP is off."""

    reason = "SIGNUP_DISABLED"
    message = "Sign-up is disabled on this service."


class TokenMissing(Unauthenticated):
    reason = "TOKEN_MISSING"
    message = "No access token was sent."
    error = None


class TokenInvalid(Unauthenticated):
    reason = "TOKEN_INVALID"
    message = "The access token is invalid."


class TokenExpired(Unauthenticated):
    reason = "TOKEN_EXPIRED"
    message = "The access token expired."


class TokenRevoked(Unauthenticated):
    reason = "TOKEN_REVOKED"
    message = "The access token's session was revoked."


class RefreshTokenInvalid(Unauthenticated):
    reason = "REFRESH_TOKEN_INVALID"
    message = "The refresh token is invalid, expired or revoked."


class RefreshTokenReused(Unauthenticated):
    reason = "REFRESH_TOKEN_REUSED"
    message = "The refresh token was already used; its session is revoked."


class PermissionDenied(ClientError):
    """The caller is authenticated but lacks a required scope."""

    reason = "INSUFFICIENT_SCOPE"
    message = "The access token lacks a required scope."

    def __init__(self, scopes: tuple[str, ...] = ()) -> None:
        self.scopes = scopes
        super().__init__()


class RateLimited(ClientError):
    """Too many attempts; try again after ``retry_after`` seconds."""

    reason = "RATE_LIMITED"
    message = "Too many attempts; try again later."

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__()


class Unavailable(AuthsvcError):
    """A dependency (the database, the revocation feed) cannot be reached.

    Not the client's fault; the transport answers UNAVAILABLE so the client
    may retry.
    """


class DatabaseUnreachable(Unavailable):
    """Start-up or the CLI could not reach the configured database; the message
    says where it points (never the password) and what to check."""
