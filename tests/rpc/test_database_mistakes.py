"""Database mistakes at start-up: one line naming the variable, where it points
(never the password) and what to do, with the exit codes of docs/reference/cli.md."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest

KEK = base64.urlsafe_b64encode(os.urandom(32)).decode()
SECRET = "s3cret-pass"


def migrate(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUTHSVC_KEY_ENCRYPTION_KEY": KEK}
    return subprocess.run([sys.executable, "-m", "authsvc", "migrate", "--database-url", url],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def _with(url: str, *, user: str | None = None, database: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc if user is None else f"{user}:{SECRET}@{parts.netloc.split('@')[-1]}"
    path = parts.path if database is None else f"/{database}"
    return urlunsplit(parts._replace(netloc=netloc, path=path))


@pytest.mark.parametrize(("case", "code", "message"), [
    ("wrong-user", 2, "refused the user and password in the URL; check both"),
    ("no-database", 2, "no such database; create it (createdb) or fix the URL's path"),
    ("not-a-url", 2, "AUTHSVC_DATABASE_URL is not a PostgreSQL URL: use postgresql://"),
    ("mysql", 2, "AUTHSVC_DATABASE_URL is not a PostgreSQL URL: use postgresql://"),
    ("unresolvable", 3, "cannot reach PostgreSQL at nonexistent.invalid:5432, database db: "
                        "its host name does not resolve"),
    ("nothing-listens", 3, "cannot reach PostgreSQL at 127.0.0.1:1, database db: "
                           "nothing answers there"),
])
def test_each_database_mistake_gets_one_line_and_its_exit_code(database_url, case, code,
                                                               message):
    """Wrong user or password, a missing database and a URL that is not PostgreSQL's
    are configuration (exit 2); a host that does not resolve or answer is
    unavailable (exit 3). The password in the URL is never printed."""
    url = {
        "wrong-user": _with(database_url, user="nobody"),
        "no-database": _with(database_url, database="no_such_database"),
        "not-a-url": "notaurl",
        "mysql": f"mysql://root:{SECRET}@db/app",
        "unresolvable": f"postgresql://app:{SECRET}@nonexistent.invalid:5432/db",
        "nothing-listens": f"postgresql://app:{SECRET}@127.0.0.1:1/db",
    }[case]

    result = migrate(url)

    assert result.returncode == code, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("authsvc: error: ") and message in line
    assert SECRET not in result.stderr and "Traceback" not in result.stderr
