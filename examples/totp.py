"""The code an authenticator app shows for a TOTP secret (RFC 6238: HMAC-SHA-1,
6 digits, 30-second steps), to try second factors without a phone:

    .venv/bin/python -m examples.totp SECRET          # the code of the current step
    .venv/bin/python -m examples.totp SECRET --next   # the code of the step after it

SECRET is the base32 ``secret`` that EnrollTotp answers (the ``secret=`` of its
``otpauth://`` URI). Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import time

PERIOD = 30
DIGITS = 6


def code(secret: str, step: int) -> str:
    """The code of time step ``step`` (RFC 4226's dynamic truncation)."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    mac = hmac.new(key, step.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    number = int.from_bytes(mac[offset:offset + 4], "big") & 0x7FFF_FFFF
    return f"{number % 10 ** DIGITS:0{DIGITS}d}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.totp")
    parser.add_argument("secret", help="the base32 secret")
    parser.add_argument("--next", action="store_true",
                        help="the code of the next 30-second step instead of the current one")
    args = parser.parse_args()
    step = int(time.time()) // PERIOD + (1 if args.next else 0)
    print(code(args.secret, step))


if __name__ == "__main__":
    main()
