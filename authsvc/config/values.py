"""The kinds of value a setting takes: how its text is parsed, and what it is called.

Each ``Kind`` turns the text of a variable into a value or raises ``ValueError``
with what was expected ("expected a whole number"); the loader puts the
variable's name in front. ``Secret`` hides a value from repr, str and logs.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError

T = TypeVar("T")


class Secret(Generic[T]):
    """A value that never shows itself in repr, str or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def reveal(self) -> T:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[type[Secret[T]], tuple[T]]:  # picklable for worker processes
        return (Secret, (self._value,))


@dataclasses.dataclass(frozen=True)
class Kind:
    """How a variable's text becomes a value; ``takes`` is what the reference says."""

    parse: Callable[[str], Any]
    takes: str


def _number(convert: Callable[[str], Any], takes: str) -> Kind:
    def parse(raw: str) -> Any:
        try:
            return convert(raw.strip())
        except ValueError:
            # Python's own text ("invalid literal for int() with base 10") helps nobody.
            raise ValueError(f"expected {takes}") from None
    return Kind(parse, takes)


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _networks(raw: str) -> tuple[str, ...]:
    """Comma-separated addresses or CIDR networks, validated."""
    networks = tuple(part.strip() for part in raw.split(",") if part.strip())
    for network in networks:
        ipaddress.ip_network(network, strict=False)  # ValueError names the bad one
    return networks


def _origins(raw: str) -> tuple[str, ...]:
    return tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())


def _key(raw: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(raw.strip() + "=" * (-len(raw.strip()) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("expected 32 bytes in base64url") from None
    if len(key) != 32:
        raise ValueError("expected 32 bytes in base64url")
    return key


def _webhook_key(raw: str) -> bytes:
    body = raw.strip().removeprefix("whsec_")
    if body == raw.strip():
        raise ValueError("expected whsec_ and base64 (a Standard Webhooks secret)")
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("expected whsec_ and base64 (a Standard Webhooks secret)") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("expected 24 to 64 bytes after whsec_")
    return key


def _listen_or_off(raw: str) -> str | None:
    return None if raw.lower() == "off" else raw


INT = _number(int, "a whole number")
FLOAT = _number(float, "a number")
TEXT = Kind(str, "text")
BOOL = Kind(_boolean, "`true` or `false`")
PATH = Kind(Path, "a file path")
NETWORKS = Kind(_networks, "comma-separated addresses or CIDR networks")
ORIGINS = Kind(_origins, "comma-separated origins")
KEY = Kind(_key, "32 bytes in base64url")
WEBHOOK_KEY = Kind(_webhook_key, "`whsec_` and base64 of 24 to 64 bytes")
LISTEN_OR_OFF = Kind(_listen_or_off, "an address, or `off`")
BY_TYPE: dict[Any, Kind] = {int: INT, float: FLOAT, str: TEXT, bool: BOOL, Path: PATH}


def webhook_secret(raw: str) -> Secret[bytes]:
    """A Standard Webhooks secret: ``whsec_`` and base64 of 24 to 64 random bytes."""
    return Secret(_webhook_key(raw))


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def read_file(variable: str, path: Path, kind: Kind) -> Any:
    """The value of a ``*_FILE`` variable: the file's text, parsed as ``kind``."""
    try:
        raw = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{variable} cannot be read: {exc.strerror}") from None
    try:
        return kind.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{variable} is invalid: {exc}") from None


def read_key_file(path: Path) -> Secret[bytes]:
    """The key-encryption key in ``path`` (as AUTHSVC_KEY_ENCRYPTION_KEY_FILE names it)."""
    return Secret(read_file("AUTHSVC_KEY_ENCRYPTION_KEY_FILE", path, KEY))


def mask_url(url: str) -> str:
    """The database URL with its password replaced, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def is_listen(listen: str) -> bool:
    host, sep, port = listen.rpartition(":")
    return bool(sep) and bool(host) and port.isdigit() and int(port) <= 65535


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) → (host, port)."""
    if not is_listen(listen):
        raise ConfigError("AUTHSVC_LISTEN must be HOST:PORT")
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)
