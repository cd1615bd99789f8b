"""The ``authsvc`` command: serve, migrate, and user administration.

Every subcommand accepts ``--data-dir`` and ``--database-url``. Errors are one
line on stderr and a non-zero exit status, never a traceback:
2 for bad input or configuration, 3 when the database is unavailable, 1 for
anything unexpected.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from .accounts import Accounts
from .clock import system_clock
from .config import Secret, Settings
from .errors import AuthsvcError, ClientError, Unavailable
from .identifiers import Identifier, Kind, normalize
from .logs import configure
from .passwords import Passwords
from .runner import database, prepare, serve
from .store.database import Database, create_pool

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
    passwords = Passwords(settings.argon2_profile, 1)
    try:
        accounts = Accounts(Database(pool, settings.db_timeout), system_clock, passwords)
        if args.action == "add":
            kind, raw = _selector(args)
            assert isinstance(kind, str)
            user_id = await accounts.add(kind, raw, _read_password(), tuple(args.scope or ()))
        elif args.action == "disable":
            user_id = await accounts.disable(_target(args))
        else:
            user_id = await accounts.set_password(_target(args), _read_password())
        print(user_id)
        return 0
    finally:
        passwords.close()
        await pool.close()


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
    commands.add_parser("migrate", parents=[common], help="apply database migrations")

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
