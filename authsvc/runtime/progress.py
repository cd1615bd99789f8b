"""The input of ``authsvc users import`` and its progress line on a terminal.

The progress line (lines read, users per second, and the time left, judged from
the bytes read so far) is written on stderr, rewritten in place at most a few
times a second, and only when stderr is a terminal: a log file or a pipe gets the
JSON lines on stdout and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import InvalidArgument

REDRAW_EVERY = 0.25  # seconds


class _Counted(Protocol):
    created: int
    skipped: int
    refused: int
    lines: int


@dataclass
class Input:
    lines: Iterator[bytes]
    size: int | None  # bytes, when known (a regular file)


@contextlib.contextmanager
def open_input(name: str) -> Iterator[Input]:
    """The file named (``-``: standard input), read as bytes, line by line."""
    if name == "-":
        yield Input(iter(sys.stdin.buffer), None)
        return
    try:
        handle = Path(name).open("rb")  # noqa: SIM115 (closed below, after the import)
    except OSError as exc:
        raise InvalidArgument("file", f"cannot be read ({exc.strerror})") from None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        yield Input(iter(handle), size)


class Progress:
    """Counts the bytes read and draws ``lines  rate/s  ETA`` on stderr."""

    def __init__(self, size: int | None) -> None:
        self._size = size
        self._read = 0
        self._started = time.monotonic()
        self._drawn = 0.0

    def count(self, lines: Iterator[bytes]) -> Iterator[bytes]:
        for line in lines:
            self._read += len(line)
            yield line

    def show(self, totals: _Counted, *, final: bool = False) -> None:
        now = time.monotonic()
        if now - self._drawn < REDRAW_EVERY and not final:
            return
        self._drawn = now
        elapsed = max(now - self._started, 1e-6)
        rate = (totals.created + totals.skipped + totals.refused) / elapsed
        line = f"{totals.lines} lines  {rate:,.0f} users/s"
        if self._size:
            fraction = self._read / self._size
            line += f"  {100 * fraction:3.0f}%"
            if fraction > 0:
                line += f"  ETA {_duration(elapsed * (1 - fraction) / fraction)}"
        sys.stderr.write(f"\r{line}\033[K")
        sys.stderr.flush()

    def done(self, totals: _Counted) -> None:
        """The last state, drawn whatever the time since the previous, and a newline."""
        self.show(totals, final=True)
        sys.stderr.write("\n")
        sys.stderr.flush()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
