"""Unpadded base64url is read strictly: one value, one spelling."""

from __future__ import annotations

import pytest

from authsvc.core.b64 import b64url, unb64url


@pytest.mark.parametrize("data", [b"", b"a", b"ab", b"abc", bytes(range(40))])
def test_what_is_written_reads_back(data: bytes):
    assert unb64url(b64url(data)) == data


@pytest.mark.parametrize("text", [
    "YWI=",      # padding
    "YW I",      # a character outside the alphabet
    "YW.I",
    "YWJ",       # "ab" with an unused bit set ("YWI" is its spelling)
    "Y",         # a dangling character
    "YW+I",      # the other alphabet
])
def test_other_spellings_are_refused(text: str):
    assert unb64url(text) is None
