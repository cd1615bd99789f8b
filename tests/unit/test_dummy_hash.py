"""The dummy hash unknown users are checked against: argon2 parameters of the
profile or of the typical stored hash, made without hashing, never matching."""

from __future__ import annotations

import argon2
import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError

from authsvc.domain.accounts.passwords import PROFILES, Passwords, unmatchable


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_unmatchable_carries_the_parameters(profile: str) -> None:
    """An unmatchable hash parses back to exactly the parameters it was made with."""
    parameters = PROFILES[profile]

    made = unmatchable(parameters)

    assert argon2.extract_parameters(made) == parameters


def test_unmatchable_verifies_as_a_mismatch() -> None:
    """Checking a password against it runs argon2 and answers a plain mismatch
    (not an invalid hash), like a wrong password against a real hash."""
    parameters = PROFILES["test-only-cheapest"]
    hasher = PasswordHasher.from_parameters(parameters)

    with pytest.raises(VerifyMismatchError):
        hasher.verify(unmatchable(parameters), "any password")


def test_unmatchable_salts_differ() -> None:
    """Each one has a fresh random salt and digest."""
    parameters = PROFILES["owasp"]

    assert unmatchable(parameters) != unmatchable(parameters)


async def test_dummy_takes_the_profile_then_the_typical_hash() -> None:
    """The dummy starts with the configured profile's parameters and takes those of
    the typical stored hash on calibration; an unknown user never verifies."""
    passwords = Passwords("test-only-cheapest", 1)
    try:
        assert passwords.dummy_parameters == PROFILES["test-only-cheapest"]
        typical = PasswordHasher(time_cost=1, memory_cost=16, parallelism=1).hash("pw")

        passwords.calibrate(typical)

        assert passwords.dummy_parameters == argon2.extract_parameters(typical)
        assert not (await passwords.verify(None, "pw")).ok
    finally:
        passwords.close()
