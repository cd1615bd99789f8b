"""The messages authsvc sends people, and how they enter the outbox.

``Messages.send`` writes an outbox row in the caller's transaction: the
message exists exactly when the change that causes it commits. The row holds
the recipient in clear (an operator must see where mail waits) and the rest
(the code) encrypted with AES-256-GCM under a key derived from the
key-encryption key, bound to the row's kind and recipient; it is wiped once
sent. ``render`` turns a claimed row back into the text to send.

Kinds: ``verify`` (a code to prove the address), ``reset`` (a password-reset
code), ``already_registered`` (someone tried to sign up with this address),
``password_changed`` (the password was changed or reset).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ...store import outbox as outbox_rows
from ...store.database import Connection
from ...store.outbox import Message
from ..accounts.identifiers import Identifier
from ..keycrypto import derive_key, encrypt

KINDS = ("verify", "reset", "already_registered", "password_changed")
_VERSION = b"\x01"


@dataclass(frozen=True, slots=True)
class Rendered:
    """What a channel sends: a subject and plain text, and the structured fields a
    webhook receiver (an SMS gateway) uses to compose its own text."""

    subject: str
    text: str
    fields: dict[str, str]


class Messages:
    def __init__(self, key_encryption_key: bytes, code_ttl: int,
                 link_base_url: str | None) -> None:
        self._aead = AESGCM(derive_key(key_encryption_key, b"authsvc outbox payload v1"))
        self._ttl_minutes = max(1, code_ttl // 60)
        self._link_base = link_base_url
        self._written: Callable[[], None] = lambda: None

    def on_written(self, callback: Callable[[], None]) -> None:
        """``callback`` runs after a transaction that wrote messages (wakes the sender)."""
        self._written = callback

    def written(self) -> None:
        self._written()

    async def send(self, conn: Connection, kind: str, to: Identifier,
                   **fields: str) -> None:
        """Queue a ``kind`` message to ``to`` (an email or phone) in ``conn``'s transaction."""
        if kind not in KINDS or to.kind not in ("email", "phone"):
            raise ValueError(f"no {kind!r} message goes to a {to.kind}")
        await outbox_rows.enqueue(conn, kind, to.kind, to.value,
                                  self.seal(kind, to.value, fields))

    def seal(self, kind: str, recipient: str, fields: dict[str, str]) -> bytes:
        """The payload as stored: encrypted, bound to its kind and recipient."""
        plain = json.dumps(fields, separators=(",", ":")).encode()
        return encrypt(self._aead, plain, _bound(kind, recipient))

    def render(self, message: Message) -> Rendered:
        fields = self._open(message)
        code = fields.get("code", "")
        link = ""
        if code and self._link_base:
            purpose = "verify" if message.kind == "verify" else "reset"
            query = urlencode({"purpose": purpose, message.channel: message.recipient,
                               "code": code})
            link = f"{self._link_base}{'&' if '?' in self._link_base else '?'}{query}"
        fields = {**fields, **({"link": link} if link else {})}
        subject, text = _TEMPLATES[message.kind]
        body = text.format(code=code, minutes=self._ttl_minutes)
        if link:
            body += f"\n\nOr open this link: {link}\n"
        return Rendered(subject, body, fields)

    def _open(self, message: Message) -> dict[str, str]:
        blob = message.payload
        if blob[:1] != _VERSION:
            raise ValueError("unknown outbox payload format")
        plain = self._aead.decrypt(blob[1:13], blob[13:],
                                   _bound(message.kind, message.recipient))
        fields = json.loads(plain)
        if not isinstance(fields, dict):
            raise ValueError("unknown outbox payload format")
        return {str(k): str(v) for k, v in fields.items()}


def _bound(kind: str, recipient: str) -> bytes:
    return f"{kind}\x00{recipient}".encode()


_TEMPLATES: dict[str, tuple[str, str]] = {
    "verify": (
        "Your verification code",
        "Your verification code is {code}\n\nIt expires in {minutes} minutes. If you did "
        "not sign up, ignore this message.\n"),
    "reset": (
        "Your password reset code",
        "Your password reset code is {code}\n\nIt expires in {minutes} minutes. If you "
        "did not ask to reset your password, ignore this message: your password is "
        "unchanged.\n"),
    "already_registered": (
        "Someone tried to sign up with your address",
        "Someone tried to create an account with this address, which already has one.\n\n"
        "If it was you, sign in instead, or reset your password if you forgot it. If it "
        "was not you, ignore this message: nothing was changed.\n"),
    "password_changed": (
        "Your password was changed",
        "The password of your account was just changed, and your other sessions were "
        "signed out.\n\nIf this was not you, reset your password at once.\n"),
}
