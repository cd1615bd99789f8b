"""The helpers the guides use in place of a phone and a mail server: examples/totp.py
computes an authenticator app's codes, examples/mailcatcher.py keeps mail and hands out
its codes in order. The guides run them against authsvc (tests/system/test_docs.py);
these tests pin what they compute and how they hand codes out."""

from __future__ import annotations

import base64
import os
import smtplib
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

from authsvc.domain.factors import totp as authsvc_totp
from examples import mailcatcher, totp
from tests.helpers import eventually_blocking
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_the_totp_helper_gives_rfc_6238s_codes_and_authsvcs():
    """The RFC 6238 SHA-1 test vectors (their last six digits), and for random secrets
    the code authsvc's own TOTP check expects at each step."""
    rfc_secret = base64.b32encode(b"12345678901234567890").decode()
    secret = os.urandom(20)

    assert [totp.code(rfc_secret, t // 30) for t in (59, 1111111109, 2000000000)] == [
        "287082", "081804", "279037"]
    assert all(totp.code(authsvc_totp.base32(secret), step) == authsvc_totp.code(secret, step)
               for step in range(59_000_000, 59_000_050))


def _send(port: int, to: str, subject: str, text: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "no-reply@example.com", to, subject
    message.set_content(text)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.send_message(message)


def test_the_mail_catcher_keeps_mail_and_hands_out_each_code_once_in_order(tmp_path: Path):
    """Served over real SMTP, each message becomes a file; ``code`` gives the oldest
    unread code to the address asked (a message without a code is passed over and
    kept), then the next one, never another address's."""
    folder, port, log = tmp_path / "mail", free_port(), tmp_path / "catcher.log"
    with log.open("wb") as out:
        catcher = subprocess.Popen(
            [sys.executable, "-m", "examples.mailcatcher", "serve", f"127.0.0.1:{port}",
             str(folder)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        eventually_blocking(lambda: "mail catcher listening" in log.read_text(), 60,
                            lambda: f"the catcher to listen:\n{log.read_text()}")
        _send(port, "ada@example.com", "Your password was changed", "It was changed.\n")
        _send(port, "ada@example.com", "Your verification code", "Your code is 11111111\n")
        _send(port, "bob@example.com", "Your verification code", "Your code is 22222222\n")
        _send(port, "ada@example.com", "Your password reset code", "Your code is 33333333\n")

        codes = [mailcatcher.code("ada@example.com", folder),
                 mailcatcher.code("bob@example.com", folder),
                 mailcatcher.code("ada@example.com", folder)]
    finally:
        catcher.terminate()
        catcher.wait(timeout=30)

    assert codes == ["11111111", "22222222", "33333333"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "0001.eml", "0002.read", "0003.read", "0004.read"]
    assert "0004.eml: to ada@example.com: Your password reset code" in log.read_text()
