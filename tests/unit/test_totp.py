"""TOTP as authsvc computes it (``authsvc.domain.factors.totp``): RFC 6238's test vectors, one
step of drift either way and no more, and the otpauth URI."""

from __future__ import annotations

import pytest

from authsvc.domain.factors import totp

RFC_SECRET = b"12345678901234567890"  # RFC 6238 appendix B, SHA-1


@pytest.mark.parametrize(("unix_time", "eight_digits"), [
    (59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
    (1234567890, "89005924"), (2000000000, "69279037"), (20000000000, "65353130"),
])
def test_codes_match_rfc_6238_test_vectors(unix_time, eight_digits):
    """The 6-digit code is the last six digits of RFC 6238's 8-digit vector."""
    assert totp.code(RFC_SECRET, unix_time // 30) == eight_digits[-6:]


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_one_step_of_drift_either_way_is_accepted(offset):
    """The codes of the step before, the step itself and the step after match, and say
    which step they belong to."""
    step = 1111111111 // 30

    assert totp.matching_step(RFC_SECRET, totp.code(RFC_SECRET, step + offset), step) == \
        step + offset


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_two_steps_of_drift_are_refused(offset):
    """Codes two or more steps away match nothing."""
    step = 1111111111 // 30

    assert totp.matching_step(RFC_SECRET, totp.code(RFC_SECRET, step + offset), step) is None


def test_the_uri_follows_the_key_uri_format():
    """otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=… with SHA1, 6 digits, 30 s."""
    secret = b"\x00" * 20

    assert totp.uri(secret, "authsvc", "alice@example.com") == (
        "otpauth://totp/authsvc:alice@example.com?secret=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "&issuer=authsvc&algorithm=SHA1&digits=6&period=30")
