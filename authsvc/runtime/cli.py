"""The ``authsvc`` command: serve, migrate, and user administration.

Every subcommand accepts ``--data-dir`` and ``--database-url``. Errors are one
line on stderr and a non-zero exit status, never a traceback:
2 for bad input or configuration, 3 when the database is unavailable, 1 for
anything unexpected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import uuid
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from ..clock import system_clock
from ..config import Secret, Settings
from ..domain.accounts import Accounts, UserRow
from ..domain.identifiers import Identifier, Kind, normalize
from ..domain.keystore import KeyStore
from ..domain.passwords import Passwords
from ..domain.revocation import Revocations
from ..errors import (
    AuthsvcError,
    ClientError,
    DatabaseUnreachable,
    InvalidArgument,
    Unavailable,
)
from ..store import events
from ..store.database import Database, create_pool
from .logs import configure
from .runner import database, prepare, serve

log = logging.getLogger("authsvc")


def main(argv: Sequence[str] | None = None) -> int:
    warnings.simplefilter("ignore")  # library warnings are not for the terminal
    args = _parser().parse_args(argv)
    configure(logging.INFO if args.command == "serve" else logging.WARNING)
    try:
        overrides: dict[str, object] = {}
        if args.data_dir is not None:
            overrides["data_dir"] = Path(args.data_dir)
        if args.database_url is not None:
            overrides["database_url"] = Secret(args.database_url)
        for flag in ("listen", "workers"):
            if getattr(args, flag, None) is not None:
                overrides[flag] = getattr(args, flag)
        if getattr(args, "no_reflection", False):
            overrides["reflection"] = False
        settings = Settings.from_env(overrides=overrides)
        if args.command == "serve":
            serve(settings)
            return 0
        with database(settings) as (settings, url):
            return asyncio.run(_admin(args, settings, url))
    except KeyboardInterrupt:
        return 130
    except ClientError as exc:
        return _fail(exc.message if not hasattr(exc, "field") else str(exc), 2)
    except DatabaseUnreachable as exc:
        return _fail(str(exc), 3)
    except Unavailable:
        return _fail("the database is unavailable", 3)
    except AuthsvcError as exc:
        return _fail(str(exc), 2)
    except Exception as exc:
        return _fail(f"unexpected {type(exc).__name__}", 1)


async def _admin(args: argparse.Namespace, settings: Settings, url: str) -> int:
    await prepare(settings, url)
    if args.command == "migrate":
        print("database is up to date")
        return 0
    pool = await create_pool(url, 2, settings.db_timeout)
    db = Database(pool, settings.db_timeout)
    if args.command in ("keys", "events"):
        try:
            if args.command == "events":
                await _events(db, args)
            else:
                await _keys(KeyStore(db, settings, system_clock), args)
            return 0
        finally:
            await pool.close()
    passwords = Passwords(settings.argon2_profile, 1)
    try:
        # No revocation set here: the running workers hear the NOTIFY.
        accounts = Accounts(db, system_clock, passwords, Revocations(db, system_clock, None))
        if args.action == "add":
            kind, raw = _selector(args)
            assert isinstance(kind, str)
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


def _user_json(user: UserRow) -> dict[str, object]:
    return {"id": user.id, "email": user.email, "phone": user.phone,
            "username": user.username, "scopes": list(user.scopes), "disabled": user.disabled}


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


def _fail(message: str, status: int) -> int:
    print(f"authsvc: error: {message}", file=sys.stderr)
    return status


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="data directory of the embedded database "
                        "(AUTHSVC_DATA_DIR, default .authsvc)")
    common.add_argument("--database-url", help="PostgreSQL URL (AUTHSVC_DATABASE_URL); "
                        "without it authsvc runs an embedded PostgreSQL")
    parser = argparse.ArgumentParser(prog="authsvc", description="gRPC authentication service")
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", parents=[common], help="run the gRPC service")
    serve_cmd.add_argument("--listen", help="HOST:PORT (AUTHSVC_LISTEN, default 127.0.0.1:50051)")
    serve_cmd.add_argument("--workers", type=int, help="worker processes (AUTHSVC_WORKERS, "
                           "default: number of cores)")
    serve_cmd.add_argument("--no-reflection", action="store_true",
                           help="do not serve gRPC reflection (AUTHSVC_REFLECTION=false)")
    commands.add_parser("migrate", parents=[common], help="apply database migrations")

    keys = commands.add_parser("keys", help="signing keys").add_subparsers(
        dest="action", required=True)
    keys.add_parser("list", parents=[common], help="list signing keys and their state")
    rotate = keys.add_parser("rotate", parents=[common],
                             help="publish a new key now; it signs after --publish-ahead")
    rotate.add_argument("--publish-ahead", type=float, default=60.0,
                        help="seconds between publishing the new key and signing with it "
                        "(default 60: every worker reloads keys every 30 s)")
    retire = keys.add_parser("retire", parents=[common],
                             help="stop signing with a key; it stays published until its "
                             "tokens expired")
    retire.add_argument("kid")

    events_cmd = commands.add_parser("events", parents=[common],
                                     help="list audit events, newest first, as JSON lines")
    events_cmd.add_argument("--user", help="only this user id")
    events_cmd.add_argument("--since", help="ISO 8601 time, or a duration such as 12h or 7d")
    events_cmd.add_argument("--kind", help="an event kind or its prefix, e.g. signin")
    events_cmd.add_argument("--limit", type=int, default=100, help="at most this many (100)")

    users = commands.add_parser("users", help="manage users").add_subparsers(
        dest="action", required=True)
    add = users.add_parser("add", parents=[common], help="create a user; prints its id")
    _identifier_flags(add, with_id=False)
    add.add_argument("--password-stdin", action="store_true", required=True,
                     help="read the password from standard input")
    add.add_argument("--scope", action="append", help="grant a scope (repeatable)")
    disable = users.add_parser("disable", parents=[common],
                               help="disable a user and revoke their sessions")
    _identifier_flags(disable, with_id=True)
    show = users.add_parser("show", parents=[common],
                            help="print a user (id, identifiers, scopes) as a JSON line")
    _identifier_flags(show, with_id=True)
    listing = users.add_parser("list", parents=[common],
                               help="print users as JSON lines, in id order")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    listing.add_argument("--after", help="start after this user id (the last one printed)")
    scopes = users.add_parser("scopes", parents=[common],
                              help="grant or withdraw scopes; prints the user id and the "
                              "scopes held now (sessions get them at their next refresh)")
    _identifier_flags(scopes, with_id=True)
    scopes.add_argument("--add", action="append", metavar="SCOPE", help="grant (repeatable)")
    scopes.add_argument("--remove", action="append", metavar="SCOPE",
                        help="withdraw (repeatable)")
    setpw = users.add_parser("set-password", parents=[common],
                             help="replace a user's password and revoke their sessions")
    _identifier_flags(setpw, with_id=True)
    setpw.add_argument("--password-stdin", action="store_true", required=True,
                       help="read the password from standard input")
    return parser


def _identifier_flags(parser: argparse.ArgumentParser, *, with_id: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--email")
    group.add_argument("--phone")
    group.add_argument("--username")
    if with_id:
        group.add_argument("--id", help="user id")


if __name__ == "__main__":
    sys.exit(main())
