"""The flows people run on their own accounts, handed to the transport as one."""

from __future__ import annotations

from dataclasses import dataclass

from .password_change import ChangePassword, PasswordReset
from .signup import SignUp, Verification


@dataclass(frozen=True, slots=True)
class SelfService:
    sign_up: SignUp
    verification: Verification
    change_password: ChangePassword
    password_reset: PasswordReset
