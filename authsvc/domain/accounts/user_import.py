"""Importing users from another system: lines of the import format in, users out.

Nothing is hashed: each user keeps the hash their old system made (a *foreign*
hash, ``foreign_hashes``) until their first sign-in replaces it with authsvc's
argon2id, so the rate is PostgreSQL's, not argon2's.

The lines are read in batches (``batch_size``, 1000 by default); each batch is one
transaction (``store.imports``), so an import stopped at any point (a kill -9
among them) has committed whole batches only, and running it again skips what is
there already: the user's ``external_id`` is the key. A line is *created*,
*skipped* (its external id was imported before, by this run or an earlier one)
or *refused* (why: the field and the reason; an identifier another user has is
refused as taken, never merged). A dry run does the same, batch by batch, in
transactions that are rolled back, so its report is what a real run would do then.

Imported accounts count as verified (usable, like accounts an operator creates:
the old system let them sign in); each identifier's own proof
(``email_verified_at``, ``phone_verified_at``) is what the line says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ...errors import InvalidArgument
from ...store import imports as import_rows
from ...store.database import Database
from ..factors import totp
from ..keycrypto import derive_key, seal
from . import foreign_hashes
from .imported import ImportedUser, WeakHash, parse_line

DEFAULT_BATCH = 1000
YIELD_EVERY = 100  # lines parsed between two turns of the event loop


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one line."""

    line: int
    external_id: str | None
    outcome: str  # created, skipped, refused
    field: str | None = None
    reason: str | None = None

    def as_json(self) -> dict[str, object]:
        found: dict[str, object] = {"line": self.line, "external_id": self.external_id,
                                    "outcome": self.outcome}
        if self.field is not None:
            found["field"] = self.field
        if self.reason is not None:
            found["reason"] = self.reason
        return found


@dataclass(slots=True)
class Totals:
    created: int = 0
    skipped: int = 0
    refused: int = 0
    weak_refused: int = 0  # among refused: a weak scheme without the opt-in
    weak_created: int = 0  # among created: a weak scheme the operator allowed
    lines: int = 0
    by_scheme: dict[str, int] = field(default_factory=dict)  # created, by foreign scheme

    def as_json(self) -> dict[str, object]:
        return {"created": self.created, "skipped": self.skipped, "refused": self.refused,
                "weak_refused": self.weak_refused, "weak_created": self.weak_created,
                "lines": self.lines, "schemes": dict(sorted(self.by_scheme.items()))}


@dataclass(frozen=True, slots=True)
class Status:
    imported: int  # users with an external id
    foreign: int  # users whose password is still an imported hash
    schemes: dict[str, int]


class UserImport:
    def __init__(self, db: Database, key_encryption_key: bytes,
                 batch_size: int = DEFAULT_BATCH) -> None:
        if not 1 <= batch_size <= 100_000:
            raise InvalidArgument("batch_size", "must be between 1 and 100000")
        self._db = db
        self._totp_key = derive_key(key_encryption_key, totp.SEALING_PURPOSE)
        self._batch_size = batch_size

    async def run(self, lines: Iterable[str | bytes], *, dry_run: bool = False,
                  allow_weak: bool = False,
                  report: Callable[[Outcome], None] = lambda _: None,
                  progress: Callable[[Totals], None] = lambda _: None,
                  batch_size: int | None = None) -> Totals:
        """Import ``lines`` (numbered from 1); ``report`` hears every line's outcome
        that is not a plain creation (all of them in a dry run, and each created user
        whose weak hash was allowed), ``progress`` the totals after each batch;
        ``batch_size`` overrides the importer's for this run."""
        size = self._batch_size if batch_size is None else batch_size
        totals = Totals()
        seen = _Seen() if dry_run else None
        batch: list[tuple[int, ImportedUser]] = []
        # One batch is written while the next is parsed (the database and Python
        # work at once); batches still commit in order, one after the other.
        writing: asyncio.Task[None] | None = None
        try:
            for number, line in enumerate(lines, start=1):
                totals.lines = number
                if number % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # let the batch being written move on
                if not line.strip():
                    continue
                try:
                    batch.append((number, parse_line(line, allow_weak=allow_weak)))
                except InvalidArgument as refused:
                    totals.refused += 1
                    totals.weak_refused += isinstance(refused, WeakHash)
                    report(Outcome(number, _external_id(line), "refused", refused.field,
                                   refused.description))
                if len(batch) >= size:
                    if writing is not None:
                        await writing
                        progress(totals)
                    writing = asyncio.create_task(self._batch(batch, totals, seen, report))
                    batch = []
            if writing is not None:
                await writing
                writing = None
            if batch:
                await self._batch(batch, totals, seen, report)
        finally:
            if writing is not None:  # an error or a cancellation: do not leave it behind
                writing.cancel()
                with contextlib.suppress(BaseException):
                    await writing
        progress(totals)
        return totals

    async def _batch(self, batch: list[tuple[int, ImportedUser]], totals: Totals,
                     seen: _Seen | None, report: Callable[[Outcome], None]) -> None:
        """One transaction; a dry run's (``seen`` set) is rolled back, and what its
        earlier batches would have created is remembered in ``seen`` instead."""
        if seen is not None:
            batch = seen.drop_repeats(batch, totals, report)
        rows = [self._row(number, user) for number, user in batch]
        try:
            async with self._db.transaction() as conn:
                await import_rows.prepare(conn)
                created, others = await import_rows.insert_batch(conn, rows)
                if seen is not None:
                    raise _RolledBack
        except _RolledBack:
            pass
        for number, user in batch:
            if number not in created:
                continue
            totals.created += 1
            if seen is not None:
                seen.add(user)
            if user.scheme is not None:
                totals.by_scheme[user.scheme] = totals.by_scheme.get(user.scheme, 0) + 1
            weak = user.scheme in foreign_hashes.WEAK_SCHEMES
            totals.weak_created += weak
            if seen is not None or weak:
                report(Outcome(number, user.external_id, "created",
                               reason=f"weak hash ({user.scheme}), allowed" if weak else None))
        for other in others:
            if other.taken is None:
                _skipped(other.ord, other.external_id, totals, report)
            else:
                _taken(other.ord, other.external_id, other.taken, totals, report)

    def _row(self, number: int, user: ImportedUser) -> import_rows.BatchRow:
        user_id = uuid.uuid4()
        sealed = (None if user.totp_secret is None
                  else seal(self._totp_key, str(user_id), user.totp_secret))
        return import_rows.BatchRow(
            ord=number, id=user_id, external_id=user.external_id, email=user.email,
            phone=user.phone, username=user.username, password_hash=user.password_hash,
            scopes=list(user.scopes), disabled=user.disabled, created_at=user.created_at,
            email_verified=user.email_verified, phone_verified=user.phone_verified,
            totp=sealed)

    async def foreign_count(self) -> int:
        """How many users still carry an imported hash."""
        async with self._db.connection() as conn:
            return await import_rows.foreign_hash_count(conn)

    async def status(self) -> Status:
        async with self._db.connection() as conn:
            return Status(imported=await import_rows.imported_count(conn),
                          foreign=await import_rows.foreign_hash_count(conn),
                          schemes=await import_rows.foreign_hash_schemes(conn))


class _RolledBack(Exception):
    """Raised inside a dry run's batch transaction so that it rolls back."""


class _Seen:
    """What a dry run's earlier batches would have created (they were rolled back):
    a later line repeating an external id or an identifier is reported as the real
    run would report it."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._identifiers: set[tuple[str, str]] = set()

    def add(self, user: ImportedUser) -> None:
        self._ids.add(user.external_id)
        self._identifiers.update(_identifiers(user))

    def drop_repeats(self, batch: list[tuple[int, ImportedUser]], totals: Totals,
                     report: Callable[[Outcome], None]) -> list[tuple[int, ImportedUser]]:
        kept = []
        for number, user in batch:
            taken = [kind for kind, value in _identifiers(user)
                     if (kind, value) in self._identifiers]
            if user.external_id in self._ids:
                _skipped(number, user.external_id, totals, report)
            elif taken:
                _taken(number, user.external_id, taken[0], totals, report)
            else:
                kept.append((number, user))
        return kept


def _identifiers(user: ImportedUser) -> list[tuple[str, str]]:
    return [(kind, value) for kind, value in
            (("email", user.email), ("phone", user.phone), ("username", user.username))
            if value is not None]


def _skipped(number: int, external_id: str, totals: Totals,
             report: Callable[[Outcome], None]) -> None:
    totals.skipped += 1
    report(Outcome(number, external_id, "skipped", "external_id", "already imported"))


def _taken(number: int, external_id: str, kind: str, totals: Totals,
           report: Callable[[Outcome], None]) -> None:
    totals.refused += 1
    report(Outcome(number, external_id, "refused", kind, "already taken by another user"))


def _external_id(line: str | bytes) -> str | None:
    """The refused line's external id, when it can be read at all (for the report)."""
    try:
        found = json.loads(line).get("external_id")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) and len(found) <= 255 else None
