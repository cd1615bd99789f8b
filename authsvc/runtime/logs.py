"""Log lines: one JSON object per line on stderr, never a secret."""

from __future__ import annotations

import json
import logging
import sys
import time

from ..config import parse_listen

_ENCODE = json.JSONEncoder(separators=(",", ":")).encode  # made once, not per line


class JsonFormatter(logging.Formatter):
    """One JSON object per record. Every call writes a line (the access log), so the
    per-line work is kept small: the encoder is made once and the timestamp's
    seconds are formatted once per second."""

    _second = -1
    _second_text = ""

    def _stamp(self, created: float, msecs: float) -> str:
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self._stamp(record.created, record.msecs),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
        return _ENCODE(line)


def configure(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # it logs whole command lines


def log_listening(listen: str, port: int, workers: int) -> None:
    """The start-up line, with what a first-time operator does next."""
    address = where(listen, port)
    logging.getLogger("authsvc").info(
        "listening on %s (%d worker%s)", address, workers, "" if workers == 1 else "s",
        extra={"fields": {
            "next": "add a user: authsvc users add --email you@example.com "
                    "--password-stdin; HTTP/JSON: scripts/gateway --upstream " + address}})


def where(listen: str, port: int) -> str:
    """HOST:PORT as a client writes it ([HOST]:PORT for IPv6)."""
    host, _ = parse_listen(listen)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
