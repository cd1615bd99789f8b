"""Configuration mistakes get one message naming the variable the person set."""

from __future__ import annotations

import logging

import pytest

from authsvc.config import Settings
from authsvc.errors import ConfigError


@pytest.mark.parametrize(("env", "message"), [
    ({"AUTHSVC_WORKERS": "abc"}, "AUTHSVC_WORKERS is invalid: expected a whole number"),
    ({"AUTHSVC_DB_TIMEOUT": "soon"}, "AUTHSVC_DB_TIMEOUT is invalid: expected a number"),
    ({"AUTHSVC_ACCESS_TOKEN_TTL": str(3 * 365 * 86400)},
     "AUTHSVC_ACCESS_TOKEN_TTL must be between 1 and 86400 seconds (a day)"),
    ({"AUTHSVC_ACCESS_TOKEN_TTL": "900", "AUTHSVC_SESSION_TTL": "600"},
     "AUTHSVC_ACCESS_TOKEN_TTL must be shorter than AUTHSVC_SESSION_TTL"),
    ({"AUTHSVC_SESSION_TTL": "3600", "AUTHSVC_SESSION_IDLE_TTL": "7200"},
     "AUTHSVC_SESSION_IDLE_TTL must be between 1 and AUTHSVC_SESSION_TTL"),
])
def test_a_bad_value_is_named_with_what_was_expected(env, message):
    """The message names the variable that was set and what it takes, never
    Python's own parser text."""
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(env)

    assert str(refused.value).startswith(message)
    assert "literal" not in str(refused.value)


def test_a_short_session_takes_the_idle_lifetime_down_with_it():
    """AUTHSVC_SESSION_TTL alone below the 7-day idle default is accepted: the idle
    lifetime, unset, becomes the session's."""
    settings = Settings.from_env({"AUTHSVC_SESSION_TTL": "3600"})

    assert (settings.session_ttl, settings.session_idle_ttl) == (3600, 3600)


def test_a_misspelt_variable_is_warned_about_with_the_closest_name(caplog):
    """An AUTHSVC_* variable authsvc does not know is named in a warning, with the
    setting it probably meant; known ones pass silently."""
    caplog.set_level(logging.WARNING, logger="authsvc")

    Settings.from_env({"AUTHSVC_ACCES_TOKEN_TTL": "60", "AUTHSVC_WORKERS": "2",
                       "AUTHSVC_NONSENSE": "1"})

    assert [r.getMessage() for r in caplog.records] == [
        "AUTHSVC_ACCES_TOKEN_TTL is not a setting of authsvc and is ignored; "
        "did you mean AUTHSVC_ACCESS_TOKEN_TTL?",
        "AUTHSVC_NONSENSE is not a setting of authsvc and is ignored"]
