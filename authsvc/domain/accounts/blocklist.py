"""New passwords are checked against common ones (NIST SP 800-63B §3.1.1.2).

The list is the 30,000 most common passwords of breach corpora that the
zxcvbn package ships (``frequency_lists.passwords``); only the ones long
enough to pass the length rule matter. It is loaded on the first check
(about 70 ms and a few MiB, once per process), so signing in never pays
for it.
"""

from __future__ import annotations

import functools


@functools.cache
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # late: only new passwords need it

    return frozenset(p for p in FREQUENCY_LISTS["passwords"] if len(p) >= 8)


def is_common(password: str) -> bool:
    """Whether ``password`` (case-insensitively) is one of the common passwords."""
    return password.lower() in _common()
