"""The administrative commands of ``authsvc``: migrate, users, keys, events.

Run by ``cli.main`` against the database (embedded or ``AUTHSVC_DATABASE_URL``);
each prints its result on stdout and raises authsvc's errors for ``main`` to
turn into one line on stderr and an exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime

from ..clock import system_clock
from ..config import Settings
from ..domain.accounts.admin import Accounts, UserRow
from ..domain.accounts.identifiers import Identifier, Kind, normalize
from ..domain.accounts.passwords import Passwords
from ..domain.accounts.user_import import UserImport
from ..domain.sessions.revocation import Revocations
from ..domain.tokens.keystore import KeyStore
from ..errors import InvalidArgument
from ..store import events
from ..store import outbox as outbox_rows
from ..store.database import Database, create_pool
from .progress import Progress, open_input
from .startup import prepare


async def run(args: argparse.Namespace, settings: Settings, url: str) -> int:
    await prepare(settings, url)
    if args.command == "migrate":
        print("database is up to date")
        return 0
    pool = await create_pool(url, 2, settings.db_timeout)
    db = Database(pool, settings.db_timeout)
    if args.command in ("keys", "events", "outbox"):
        try:
            if args.command == "events":
                await _events(db, args)
            elif args.command == "outbox":
                await _outbox(db, args)
            else:
                await _keys(KeyStore(db, settings, system_clock), args)
            return 0
        finally:
            await pool.close()
    if args.action == "import":
        try:
            return await _import(db, settings, args)
        finally:
            await pool.close()
    passwords = Passwords(settings.argon2_profile, 1)
    try:
        # No revocation set here: the running workers hear the NOTIFY.
        accounts = Accounts(db, system_clock, passwords, Revocations(db, system_clock, None))
        if args.action == "add":
            kind, raw = _selector(args)
            if kind is None:  # argparse requires one of them for "add"; never --id
                raise InvalidArgument("identifier", "give --email, --phone or --username")
            user_id = await accounts.add(kind, raw, _read_password(), tuple(args.scope or ()))
        elif args.action == "disable":
            user_id = await accounts.disable(_target(args))
        elif args.action in ("show", "list"):
            for user in ([await accounts.get(_target(args))] if args.action == "show"
                         else await accounts.page(args.limit, args.after)):
                print(json.dumps(_user_json(user), separators=(",", ":")))
            return 0
        elif args.action == "scopes":
            if not (args.add or args.remove):
                raise InvalidArgument("scope", "give --add or --remove (repeatable)")
            user_id, scopes = await accounts.change_scopes(
                _target(args), add=tuple(args.add or ()), remove=tuple(args.remove or ()))
            print(user_id, " ".join(scopes))
            return 0
        else:
            user_id = await accounts.set_password(_target(args), _read_password())
        print(user_id)
        return 0
    finally:
        passwords.close()
        await pool.close()


async def _import(db: Database, settings: Settings, args: argparse.Namespace) -> int:
    """``users import``: the outcome of each line that is not a plain creation, then
    the totals, as JSON lines on stdout; a progress line on stderr when it is a
    terminal. Exit 0 even when lines were refused (they are reported)."""
    if settings.key_encryption_key is None:  # Settings refuses to load without it
        raise InvalidArgument("key_encryption_key", "is required")
    importer = UserImport(db, settings.key_encryption_key.reveal(), args.batch_size)
    if args.status:
        if args.file is not None:
            raise InvalidArgument("file", "give either FILE or --status")
        status = await importer.status()
        print(json.dumps({"imported": status.imported, "foreign_hash": status.foreign,
                          "schemes": status.schemes}, separators=(",", ":")))
        return 0
    if args.file is None:
        raise InvalidArgument("file", "give the file to import (or - for standard input)")
    with open_input(args.file) as source:
        meter = Progress(source.size) if sys.stderr.isatty() else None
        totals = await importer.run(
            meter.count(source.lines) if meter else source.lines, dry_run=args.dry_run,
            allow_weak=args.allow_weak_hashes,
            report=lambda outcome: print(json.dumps(outcome.as_json(), separators=(",", ":")),
                                         flush=False),
            progress=meter.show if meter else lambda _: None)
    if meter:
        meter.done(totals)
    print(json.dumps({"summary": {**totals.as_json(), "dry_run": args.dry_run}},
                     separators=(",", ":")))
    return 0


async def _events(db: Database, args: argparse.Namespace) -> None:
    """One JSON object per line, newest first."""
    if args.user is not None:
        try:
            uuid.UUID(args.user)
        except ValueError:
            raise InvalidArgument("user", "must be a user id (authsvc users show "
                                  "--email … prints it)") from None
    if args.kind is not None and not any(
            k == args.kind or k.startswith(args.kind + ".") for k in events.KINDS):
        raise InvalidArgument("kind", "must be one of " + ", ".join(events.KINDS)
                              + ", or a prefix such as signin")
    since = None if args.since is None else _since(args.since)
    async with db.connection() as conn:
        found = await events.search(conn, user_id=args.user, since=since, kind=args.kind,
                                    limit=args.limit)
    for event in found:
        print(json.dumps(event, separators=(",", ":")))


async def _outbox(db: Database, args: argparse.Namespace) -> None:
    """One JSON object per message (never its content, which holds codes)."""
    if not 1 <= args.limit <= 10_000:
        raise InvalidArgument("limit", "must be between 1 and 10000")
    async with db.connection() as conn:
        found = await outbox_rows.listing(conn, include_sent=args.all, limit=args.limit)
    for message in found:
        print(json.dumps(message, separators=(",", ":")))


def _user_json(user: UserRow) -> dict[str, object]:
    return {"id": user.id, "email": user.email, "phone": user.phone,
            "username": user.username, "scopes": list(user.scopes), "disabled": user.disabled,
            "verified": user.verified}


def _since(raw: str) -> float:
    """An ISO 8601 time, or a duration back from now such as 30m, 12h or 7d."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if raw[:-1].isdigit() and raw[-1:] in units:
        return system_clock() - int(raw[:-1]) * units[raw[-1]]
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidArgument("since", "must be an ISO 8601 time or a duration like 12h")\
            from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


async def _keys(keystore: KeyStore, args: argparse.Namespace) -> None:
    if args.action == "rotate":
        print(await keystore.rotate(publish_ahead=args.publish_ahead))
        return
    if args.action == "retire":
        await keystore.retire(args.kid)
        return
    now = system_clock()
    ring = await keystore.load()
    signer = ring.signer(now)
    print(f"{'KID':44}  {'ALG':5}  {'STATE':9}  {'SIGNS FROM':20}  {'PUBLISHED UNTIL':20}")
    for key in sorted(ring.all(), key=lambda k: k.activates_at):
        state = ("signing" if signer is not None and key.kid == signer.kid else
                 "next" if key.activates_at > now else
                 "retired" if key.published_at(now) else "expired")
        until = "-" if key.publish_until is None else _stamp(key.publish_until)
        print(f"{key.kid:44}  {key.alg:5}  {state:9}  {_stamp(key.activates_at):20}  {until:20}")


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _selector(args: argparse.Namespace) -> tuple[Kind | None, str]:
    kinds: tuple[Kind, ...] = ("email", "phone", "username")
    for kind in kinds:
        value = getattr(args, kind, None)
        if value is not None:
            return kind, value
    return None, args.id


def _target(args: argparse.Namespace) -> Identifier | str:
    kind, raw = _selector(args)
    return raw if kind is None else normalize(kind, raw)


def _read_password() -> str:
    """The password from stdin, exactly as typed: only the final newline goes."""
    data = sys.stdin.read()
    if data.endswith("\r\n"):
        return data[:-2]
    return data.removesuffix("\n")


