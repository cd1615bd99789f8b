"""The authsvc command: user administration and its error messages."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ..helpers import PASSWORD, authsvc


def test_users_add_prints_the_new_user_id_and_rejects_bad_input(database_url):
    """add prints an id; duplicates, bad syntax and bad passwords get one line on stderr."""
    added = authsvc(database_url, "users", "add", "--email", "Dora@Example.com",
                    "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert len(added.stdout.strip()) == 36

    cases = {
        ("--email", "dora@example.com"): (PASSWORD, "email: already taken by another user"),
        ("--email", "not an email"): (PASSWORD, "email: is not a valid email address"),
        ("--phone", "12345"): (PASSWORD, "phone: must be an E.164 number such as +14155550123"),
        ("--username", "x"): (PASSWORD, "username: must be 3 to 64 letters"),
        ("--email", "eve@example.com"): ("short", "password: must be at least 8 characters"),
        ("--username", "eve"): ("p" * 1025, "password: must be at most 1024 characters"),
    }
    for (flag, value), (password, message) in cases.items():
        result = authsvc(database_url, "users", "add", flag, value, "--password-stdin",
                         stdin=password + "\n")
        assert result.returncode == 2, (flag, value, result.stderr)
        assert result.stderr.startswith(f"authsvc: error: {message}")
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_disable_and_set_password_find_users_by_any_selector(database_url):
    """disable and set-password take --email/--phone/--username/--id; unknown users fail."""
    added = authsvc(database_url, "users", "add", "--phone", "+44 20 7946 0958",
                    "--password-stdin", stdin=PASSWORD)
    user_id = added.stdout.strip()

    changed = authsvc(database_url, "users", "set-password", "--phone", "+442079460958",
                      "--password-stdin", stdin="another password\n")
    disabled = authsvc(database_url, "users", "disable", "--id", user_id)
    missing = authsvc(database_url, "users", "disable", "--email", "ghost@example.com")

    assert added.returncode == 0, added.stderr
    assert (changed.returncode, changed.stdout.strip()) == (0, user_id)
    assert (disabled.returncode, disabled.stdout.strip()) == (0, user_id)
    assert (missing.returncode, missing.stderr) == (2, "authsvc: error: No such user.\n")


@pytest.mark.parametrize(("variable", "value"), [
    ("AUTHSVC_ACCESS_TOKEN_TTL", "soon"), ("AUTHSVC_SIGNING_ALG", "HS256"),
    ("AUTHSVC_KEY_ENCRYPTION_KEY", "short"), ("AUTHSVC_SESSION_IDLE_TTL", "99999999999"),
])
def test_invalid_configuration_stops_with_the_variable_named(database_url, variable, value):
    """A bad AUTHSVC_* value is a one-line error naming the variable."""
    result = authsvc(database_url, "migrate", env={variable: value})

    assert result.returncode == 2
    assert result.stderr.startswith(f"authsvc: error: {variable}")
    assert result.stderr.count("\n") == 1


def test_outside_the_embedded_default_an_encryption_key_is_required(database_url):
    """With a database URL and no key-encryption key, authsvc says how to make one."""
    env = {k: v for k, v in os.environ.items() if k != "AUTHSVC_KEY_ENCRYPTION_KEY"}
    result = subprocess.run([sys.executable, "-m", "authsvc", "migrate", "--database-url",
                             database_url], capture_output=True, text=True, env=env,
                            timeout=60, check=False)

    assert result.returncode == 2
    assert "AUTHSVC_KEY_ENCRYPTION_KEY must be set" in result.stderr
    assert "secrets.token_bytes(32)" in result.stderr
