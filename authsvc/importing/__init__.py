"""Adapters that read other identity services' exports into authsvc's import format.

Each adapter is a pure function of the export (a parsed document or a text
stream) that yields one dict per user in the import format (JSON Lines, one such
dict a line; the format and its validation belong to the import command). Nothing
is hashed or verified here: a foreign hash is carried over as its source stored
it, with the parameters needed to check it at the user's first sign-in.

A user an adapter cannot carry over faithfully (a hash algorithm or second factor
authsvc cannot check) is never imported weakened: it is handed to ``on_refused``
with the reason, or raises ``Unconvertible`` when no callback is given.

- ``keycloak``: a realm export (``kc.sh export``).
- ``supabase``: Supabase Auth's ``auth.users`` as ``COPY ... TO STDOUT WITH CSV HEADER``.
"""

from __future__ import annotations

from collections.abc import Callable


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


__all__ = ["OnRefused", "Unconvertible", "refuse"]
