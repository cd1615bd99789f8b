"""Adapters from other systems' exports to authsvc's import format (JSON Lines).

Each module reads one peer's real export and yields dicts of the format that
``authsvc.domain.accounts.imported`` checks (re-exported by ``format``); the
``authsvc users import`` command and the ImportUsers RPC take the lines. Nothing
is hashed or verified here: a foreign hash is carried over as its source stored
it, with the parameters needed to check it at the user's first sign-in.

- ``keycloak``: a realm export (``kc.sh export``);
- ``supabase``: Supabase Auth's ``auth.users`` as ``COPY ... TO STDOUT WITH CSV HEADER``;
- ``firebase``: ``firebase auth:export`` JSON with the project's hash parameters;
- ``plain``: a home-made table (CSV or JSON Lines).

A user the Keycloak or Supabase adapter cannot carry over faithfully (a hash
algorithm or second factor authsvc cannot check, a deleted account) is never
imported weakened: it is handed to ``on_refused`` with the reason, or raises
``Unconvertible`` when no callback is given; their command lines list such users
on standard error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


class Unconvertible(ValueError):
    """A user of an export that cannot be carried over as it is (fixed ``reason``)."""

    def __init__(self, external_id: str, reason: str) -> None:
        self.external_id = external_id
        self.reason = reason
        super().__init__(f"{external_id}: {reason}")


OnRefused = Callable[[Unconvertible], None]


def refuse(error: Unconvertible, on_refused: OnRefused | None) -> None:
    """Hand ``error`` to ``on_refused``, or raise it when there is none."""
    if on_refused is None:
        raise error
    on_refused(error)


def write_lines(records: Iterable[Mapping[str, Any]]) -> int:
    """Each record as one JSON line of the import format on standard output; how
    many were written."""
    written = 0
    for record in records:
        sys.stdout.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")
        written += 1
    return written


def report_refused(adapter: str, written: int, refused: list[Unconvertible]) -> None:
    """The users an adapter could not carry over, one JSON line each, and the count
    of both, on standard error."""
    for error in refused:
        sys.stderr.write(json.dumps({"external_id": error.external_id,
                                     "refused": error.reason}) + "\n")
    sys.stderr.write(f"{adapter}: {written} users written, {len(refused)} refused\n")


__all__ = ["OnRefused", "Unconvertible", "refuse", "report_refused", "write_lines"]
