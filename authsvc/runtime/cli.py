"""The ``authsvc`` command: serve, migrate, and user administration.

Every subcommand accepts ``--data-dir`` and ``--database-url``. Errors are one
line on stderr and a non-zero exit status, never a traceback:
2 for bad input or configuration (a missing server extra among them), 3 when
the database is unavailable, 1 for anything unexpected. ^C or SIGTERM: exit
status 130 once start-up is under way (the entry point, ``authsvc.__main__``,
covers the moments before).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from ..config import Secret, Settings
from ..errors import AuthsvcError, ClientError, DatabaseUnreachable, Unavailable
from .logs import configure

log = logging.getLogger("authsvc")


_VALUED = ("--data-dir", "--database-url")

# The top-level modules of the server extra's distributions that authsvc imports
# (a test keeps this list equal to what the package imports beyond the base
# dependencies). ``pip install authsvc`` alone is the guard's install: every
# command here needs these.
SERVER_MODULES = ("aiosmtplib", "argon2", "asyncpg", "bcrypt", "grpc_health", "grpc_reflection",
                  "opentelemetry", "pgserver", "prometheus_client", "psutil", "webauthn",
                  "zxcvbn")
SERVER_EXTRA = "pip install 'authsvc[server]'"


def _kid_as_operand(argv: Sequence[str]) -> list[str]:
    """``keys retire KID``: a kid is a base64url RFC 7638 thumbprint, so one in 64
    starts with ``-``, which argparse would take for an option. The one argument
    after ``retire`` that is not one of its options is the kid: it goes last, after
    ``--``."""
    args = list(argv)
    if "--" in args or "retire" not in args or args.index("retire") < 1 \
            or args[args.index("retire") - 1] != "keys":
        return args
    i = args.index("retire") + 1
    while i < len(args):
        arg = args[i]
        if arg in _VALUED:
            i += 2
        elif arg in ("-h", "--help") or arg.startswith(tuple(f"{o}=" for o in _VALUED)):
            i += 1
        else:
            return [*args[:i], *args[i + 1:], "--", arg]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    warnings.simplefilter("ignore")  # library warnings are not for the terminal
    args = _parser().parse_args(_kid_as_operand(sys.argv[1:] if argv is None else argv))
    configure(logging.INFO if args.command == "serve" else logging.WARNING)
    try:
        # From here on SIGTERM and ^C unwind (KeyboardInterrupt), so the embedded
        # PostgreSQL is stopped on the way out; the server installs its own
        # handlers once up. Before, nothing needed stopping: SIGTERM, and SIGINT
        # as the entry point left it, had their default action (a quiet exit).
        signal.signal(signal.SIGTERM, _interrupted)
        _interrupt_on_sigint()
        missing = missing_server_modules()
        if missing:
            return _fail(f"the server extra is not installed (missing "
                         f"module{'s' if len(missing) > 1 else ''}: {', '.join(missing)}): "
                         f"{SERVER_EXTRA}", 2)
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
        # The server's and the commands' modules load only now, inside the handlers.
        from .runner import database, serve

        if args.command == "serve":
            serve(settings)
            return 0
        import asyncio

        from .commands import run

        with database(settings) as (settings, url):
            return asyncio.run(run(args, settings, url))
    except KeyboardInterrupt:
        log.info("interrupted")
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


def missing_server_modules() -> list[str]:
    """Those of ``SERVER_MODULES`` this Python cannot import (found, not imported)."""
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


def _interrupt_on_sigint() -> None:
    """SIGINT raises KeyboardInterrupt again where the entry point left it at its
    default action; ignored (inherited so by a background job) it stays ignored,
    and a handler of whoever called ``main`` in-process stays too."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_DFL:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _interrupted(signum: int, _frame: object) -> NoReturn:
    raise KeyboardInterrupt


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

    outbox_cmd = commands.add_parser("outbox", parents=[common],
                                     help="list pending and failed messages as JSON lines, "
                                     "oldest first")
    outbox_cmd.add_argument("--all", action="store_true", help="sent ones too")
    outbox_cmd.add_argument("--limit", type=int, default=100, help="at most this many (100)")

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
    importing = users.add_parser(
        "import", parents=[common],
        help="import users from a JSON Lines file of the import format (see the guide "
        "Import users); prints each refused or skipped line and a summary as JSON lines")
    importing.add_argument("file", nargs="?", metavar="FILE",
                           help="the file to import, - for standard input")
    importing.add_argument("--dry-run", action="store_true",
                           help="change nothing; print what each line would become and why")
    importing.add_argument("--allow-weak-hashes", action="store_true",
                           help="keep md5 and sha1 hashes too (they are refused otherwise); "
                           "each such user is reported")
    importing.add_argument("--batch-size", type=int, default=1000,
                           help="users per transaction (1000)")
    importing.add_argument("--status", action="store_true",
                           help="print how many imported users still carry a foreign hash "
                           "(instead of importing)")
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
