"""What is presented as a second factor, and the checks of its shape.

Shared by the flows that take a factor: sign-in with a second factor
(``mfa``), TOTP confirmation (``otp``) and passkey registration and sign-in
(``passkeys``). A value that cannot be a code at all is refused here, naming the
field, before anything is counted: no code was guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...errors import InvalidArgument

TOTP = "totp"
RECOVERY_CODE = "recovery_code"
PASSKEY = "passkey"
RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # base32, lower case
RECOVERY_LENGTH = 10  # 50 bits each, shown as xxxxx-xxxxx
_TOTP_CODE = re.compile(r"[0-9]{6}")


@dataclass(frozen=True, slots=True)
class Attempt:
    """What is presented as a second factor: exactly one of the three."""

    totp: str | None = None
    recovery_code: str | None = None
    passkey: tuple[str, str] | None = None  # (ceremony_id, credential_json)


def totp_code(presented: str, field: str = "totp") -> str:
    """A TOTP code normalised; InvalidArgument naming ``field`` when it cannot be one."""
    code = presented.strip().replace(" ", "")
    if not _TOTP_CODE.fullmatch(code):
        raise InvalidArgument(field, "must be the 6 digits the authenticator app shows")
    return code


def check_attempt(attempt: Attempt) -> Attempt:
    """The attempt with its code normalised; InvalidArgument naming the field when it
    cannot be a code at all (nothing is counted then: no code was guessed)."""
    if attempt.totp is not None:
        return Attempt(totp=totp_code(attempt.totp))
    if attempt.recovery_code is not None:
        code = attempt.recovery_code.strip().lower().replace("-", "").replace(" ", "")
        if len(code) != RECOVERY_LENGTH or any(c not in RECOVERY_ALPHABET for c in code):
            raise InvalidArgument("recovery_code", "must be one of the recovery codes "
                                  "(10 letters and digits, as xxxxx-xxxxx)")
        return Attempt(recovery_code=code)
    if attempt.passkey is not None:
        check_passkey_fields(*attempt.passkey, prefix="passkey.")
        return attempt
    raise InvalidArgument("factor", "give totp, recovery_code or passkey")


MAX_CREDENTIAL_JSON = 64 * 1024
MAX_CEREMONY_ID = 128


def check_passkey_fields(ceremony_id: str, credential_json: str, prefix: str = "") -> None:
    if not ceremony_id:
        raise InvalidArgument(prefix + "ceremony_id", "must not be empty")
    if len(ceremony_id) > MAX_CEREMONY_ID:
        raise InvalidArgument(prefix + "ceremony_id",
                              f"must be at most {MAX_CEREMONY_ID} characters")
    if not credential_json:
        raise InvalidArgument(prefix + "credential_json", "must not be empty")
    if len(credential_json) > MAX_CREDENTIAL_JSON:
        raise InvalidArgument(prefix + "credential_json",
                              f"must be at most {MAX_CREDENTIAL_JSON} characters")
