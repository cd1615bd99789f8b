"""A mail catcher for trying self-service accounts on your own machine: an SMTP
server that accepts every message and keeps it as a file, and a command that prints
the code of the next message to an address.

    .venv/bin/python -m examples.mailcatcher serve 127.0.0.1:8025 mail   # a terminal of its own
    .venv/bin/python -m examples.mailcatcher code ada@example.com mail   # the next code to ada

``serve`` keeps each message as ``mail/NNNN.eml`` and prints its recipient and subject.
``code`` waits (up to a minute) for the oldest message to the address that carries a
code and that no ``code`` has read yet, prints the code and marks the message read
(``NNNN.read``); messages without a code (a notice that the password changed) are
left alone. For trying only: it takes mail for anyone, over plain SMTP on loopback.
Needs aiosmtpd (``.venv/bin/python -m pip install -c constraints.txt aiosmtpd``).
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import re
import sys
import time
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

CODE = re.compile(r"code is (\S+)")  # "Your verification code is 12345678"
PATIENCE = 60.0  # seconds ``code`` waits for a message


class Keeper:
    """The aiosmtpd handler: each message accepted becomes the next numbered file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        taken = [int(p.stem) for p in self.folder.iterdir() if p.stem.isdigit()]
        path = self.folder / f"{max(taken, default=0) + 1:04d}.eml"
        partial = path.with_suffix(".part")
        partial.write_bytes(envelope.content)
        partial.rename(path)  # whole or absent: ``code`` never reads half a message
        message = _parsed(path)
        print(f"{path.name}: to {message['To']}: {message['Subject']}", flush=True)
        return "250 OK"


async def serve(listen: str, folder: Path) -> None:
    host, _, port = listen.rpartition(":")
    keeper = Keeper(folder)
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(keeper, hostname="mailcatcher"), host, int(port))
    print(f"mail catcher listening on {listen}, keeping messages in {folder}/", flush=True)
    async with server:
        await server.serve_forever()


def code(address: str, folder: Path) -> str:
    """The code of the oldest unread message to ``address`` that has one (waiting for
    it); that message is marked read."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        for path in sorted(folder.glob("*.eml")):
            message = _parsed(path)
            recipients = {a.lower() for _, a in getaddresses(message.get_all("To", []))}
            text = message.get_body(("plain",))
            found = CODE.search(text.get_content()) if text is not None else None
            if address.lower() in recipients and found:
                path.rename(path.with_suffix(".read"))
                return found.group(1)
        time.sleep(0.1)
    raise SystemExit(f"no message with a code to {address} in {folder}/ within "
                     f"{PATIENCE:.0f} s: is authsvc's AUTHSVC_SMTP_URL this catcher?")


def _parsed(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.mailcatcher")
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve", help="accept mail and keep it in FOLDER")
    serving.add_argument("listen", metavar="HOST:PORT")
    serving.add_argument("folder", type=Path)
    reading = commands.add_parser("code", help="print the code of the next message to ADDRESS")
    reading.add_argument("address")
    reading.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    if args.command == "serve":
        args.folder.mkdir(parents=True, exist_ok=True)
        asyncio.run(serve(args.listen, args.folder))
    else:
        print(code(args.address, args.folder))


if __name__ == "__main__":
    main(sys.argv[1:])
