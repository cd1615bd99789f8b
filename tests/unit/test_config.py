"""Settings: defaults, validation and masking."""

from __future__ import annotations

import pytest

from authsvc.config import Secret, Settings, mask_url
from authsvc.errors import ConfigError


def test_defaults_match_the_documented_ones():
    """With no variables set, the README's defaults apply."""
    settings = Settings.from_env({})

    assert (settings.listen, settings.signing_alg, settings.access_token_ttl,
            settings.session_ttl, settings.session_idle_ttl, settings.refresh_reuse_interval,
            settings.clock_leeway, settings.issuer, settings.audience) == (
        "127.0.0.1:50051", "ES256", 900, 30 * 86400, 7 * 86400, 10, 30, "authsvc", "authsvc")
    assert settings.embedded


@pytest.mark.parametrize(("environ", "overrides", "threads"), [
    ({"AUTHSVC_WORKERS": "1"}, {}, 8),
    ({"AUTHSVC_WORKERS": "2"}, {}, 4),
    ({}, {"workers": 3}, 2),  # --workers
    ({"AUTHSVC_WORKERS": "16"}, {}, 1),
    ({}, {}, 1),  # one worker per core by default
    ({"AUTHSVC_WORKERS": "2", "AUTHSVC_HASH_THREADS": "8"}, {}, 8),
])
def test_hash_threads_share_the_cores_out_among_the_workers(monkeypatch, environ, overrides,
                                                            threads):
    """Unset, AUTHSVC_HASH_THREADS is cores ÷ workers (at least one): on 8 cores,
    2 workers hash on 4 threads each, not 8 each."""
    monkeypatch.setattr("os.cpu_count", lambda: 8)

    assert Settings.from_env(environ, overrides).hash_threads == threads


@pytest.mark.parametrize(("environ", "variable"), [
    ({"AUTHSVC_LISTEN": "nowhere"}, "AUTHSVC_LISTEN"),
    ({"AUTHSVC_CLOCK_LEEWAY": "-1"}, "AUTHSVC_CLOCK_LEEWAY"),
    ({"AUTHSVC_REFRESH_REUSE_INTERVAL": "ten"}, "AUTHSVC_REFRESH_REUSE_INTERVAL"),
    ({"AUTHSVC_SESSION_TTL": "0"}, "AUTHSVC_SESSION_TTL"),
    ({"AUTHSVC_ARGON2_PROFILE": "fast"}, "AUTHSVC_ARGON2_PROFILE"),
])
def test_invalid_values_name_the_variable(environ, variable):
    """Each invalid value raises ConfigError starting with the variable's name."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(environ)

    assert str(caught.value).startswith(variable)


def test_secrets_print_masked():
    """Neither the database password nor the encryption key shows in repr."""
    settings = Settings.from_env({
        "AUTHSVC_DATABASE_URL": "postgresql://u:hunter2@db/authsvc",
        "AUTHSVC_KEY_ENCRYPTION_KEY": "A" * 43,
    })

    assert "hunter2" not in repr(settings)
    assert "AAAA" not in repr(settings)
    assert mask_url("postgresql://u:hunter2@db/authsvc") == "postgresql://u:****@db/authsvc"
    assert Secret("x") == Secret("x")
