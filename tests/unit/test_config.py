"""Settings: defaults, validation and masking, and the declarations they come from."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from authsvc.config import Secret, Settings, mask_url
from authsvc.config.declare import Area, Rule, declared, variables
from authsvc.errors import ConfigError


def test_defaults_match_the_documented_ones():
    """With no variables set, the documented defaults (docs/configuration.md) apply."""
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


# The variables authsvc read before settings were declared once: each keeps working.
VARIABLES = {
    "AUTHSVC_DATABASE_URL", "AUTHSVC_DATA_DIR", "AUTHSVC_LISTEN", "AUTHSVC_WORKERS",
    "AUTHSVC_ISSUER", "AUTHSVC_AUDIENCE", "AUTHSVC_SIGNING_ALG", "AUTHSVC_ACCESS_TOKEN_TTL",
    "AUTHSVC_ACCESS_TOKEN_PROFILE",
    "AUTHSVC_SESSION_TTL", "AUTHSVC_SESSION_IDLE_TTL", "AUTHSVC_REFRESH_REUSE_INTERVAL",
    "AUTHSVC_CLOCK_LEEWAY", "AUTHSVC_KEY_ENCRYPTION_KEY", "AUTHSVC_KEY_ENCRYPTION_KEY_FILE",
    "AUTHSVC_REVOCATION_MAX_STALENESS", "AUTHSVC_ARGON2_PROFILE", "AUTHSVC_HASH_THREADS",
    "AUTHSVC_TOKEN_CACHE_SIZE", "AUTHSVC_DB_POOL_SIZE", "AUTHSVC_DB_TIMEOUT",
    "AUTHSVC_REFLECTION", "AUTHSVC_SHUTDOWN_GRACE", "AUTHSVC_METRICS_LISTEN",
    "AUTHSVC_TLS_CERT_FILE", "AUTHSVC_TLS_KEY_FILE", "AUTHSVC_TLS_CLIENT_CA_FILE",
    "AUTHSVC_TRUSTED_PROXIES", "AUTHSVC_THROTTLE_IDENTIFIER_FREE",
    "AUTHSVC_THROTTLE_ADDRESS_FREE", "AUTHSVC_THROTTLE_PAIR_FREE",
    "AUTHSVC_THROTTLE_REFRESH_FREE", "AUTHSVC_THROTTLE_BASE_DELAY",
    "AUTHSVC_THROTTLE_MAX_DELAY", "AUTHSVC_THROTTLE_WINDOW", "AUTHSVC_THROTTLE_TRUST_TTL",
    "AUTHSVC_THROTTLE_IPV6_PREFIX", "AUTHSVC_AUDIT_RETENTION", "AUTHSVC_AUDIT_REFRESHES",
    "AUTHSVC_HOUSEKEEPING_INTERVAL", "AUTHSVC_WATCH_STREAMS_PER_PEER", "AUTHSVC_SIGNUP",
    "AUTHSVC_CODE_TTL", "AUTHSVC_CODE_FORMAT", "AUTHSVC_LINK_BASE_URL", "AUTHSVC_SMTP_URL",
    "AUTHSVC_SMTP_FROM", "AUTHSVC_WEBHOOK_URL", "AUTHSVC_WEBHOOK_SECRET",
    "AUTHSVC_EMAIL_CHANNEL", "AUTHSVC_OUTBOX_RETRY_BASE", "AUTHSVC_OUTBOX_RETRY_MAX",
    "AUTHSVC_OUTBOX_MAX_ATTEMPTS", "AUTHSVC_OUTBOX_SEND_TIMEOUT", "AUTHSVC_OUTBOX_LEASE",
    "AUTHSVC_MFA_TOKEN_TTL", "AUTHSVC_STEP_UP_MAX_AGE",
    "AUTHSVC_WEBAUTHN_RP_ID", "AUTHSVC_WEBAUTHN_RP_NAME", "AUTHSVC_WEBAUTHN_ORIGINS",
    "AUTHSVC_PASSKEY_SIGN_IN", "AUTHSVC_PROVIDERS_FILE", "AUTHSVC_REDIRECT_ORIGINS",
    "AUTHSVC_PROVIDER_TIMEOUT", "AUTHSVC_FEDERATION_FLOW_TTL",
}
DECLARED = declared(Settings)
KEY = base64.urlsafe_b64encode(b"k" * 32).decode().rstrip("=")


def test_every_existing_variable_is_declared_under_its_name():
    """The declarations read exactly the variables authsvc always read, each named
    AUTHSVC_ and its field's name, and every field of Settings is one of them."""
    assert set(variables(Settings)) == VARIABLES
    assert [item.variable for item in DECLARED] == [
        "AUTHSVC_" + field.name.upper() for field in dataclasses.fields(Settings)]


@pytest.mark.parametrize("item", DECLARED, ids=lambda item: item.variable)
def test_every_setting_has_a_one_line_doc_and_a_default_the_checks_accept(item):
    """Each declaration says what it is in one line, and its default passes its own
    checks (so Settings() with nothing set is valid)."""
    value = item.default()
    plain = value.reveal() if isinstance(value, Secret) else value

    assert item.spec.doc and "\n" not in item.spec.doc
    assert all(plain is None or check.holds(plain)
               for check in item.spec.checks if isinstance(check, Rule))


@pytest.mark.parametrize("item", [item for item in DECLARED
                                  if item.kind.takes in ("a whole number", "a number")],
                         ids=lambda item: item.variable)
def test_every_number_refuses_text_naming_its_variable(item):
    """Whatever the setting, text where a number belongs stops start-up with the
    variable's name and what it takes, not Python's parser message."""
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({item.variable: "soon"})

    assert str(refused.value) == f"{item.variable} is invalid: expected {item.kind.takes}"


def test_every_secret_prints_masked():
    """Each setting declared Secret[...] is read into a Secret: its value shows in
    neither repr nor str of the settings."""
    settings = Settings.from_env({
        "AUTHSVC_DATABASE_URL": "postgresql://u:hunter2@db/authsvc",
        "AUTHSVC_KEY_ENCRYPTION_KEY": KEY,
        "AUTHSVC_SMTP_URL": "smtp://mailer:smtp-pw-1@mail.example.com",
        "AUTHSVC_SMTP_FROM": "no-reply@example.com",
        "AUTHSVC_WEBHOOK_URL": "https://hooks.example.com",
        "AUTHSVC_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"w" * 32).decode()})
    secrets = [item for item in DECLARED if item.secret]

    assert [item.name for item in secrets] == [
        "database_url", "key_encryption_key", "smtp_url", "webhook_secret"]
    assert all(isinstance(getattr(settings, item.name), Secret) for item in secrets)
    for text in (repr(settings), str(settings)):
        assert "hunter2" not in text and "smtp-pw-1" not in text
        assert KEY not in text and repr(b"k" * 32) not in text and "wwww" not in text


def test_an_empty_variable_counts_as_unset():
    """AUTHSVC_LISTEN= (empty) leaves the default, as an unset variable does."""
    assert Settings.from_env({"AUTHSVC_LISTEN": "", "AUTHSVC_WORKERS": ""}) == \
        Settings.from_env({})


def test_the_key_encryption_key_can_come_from_a_file(tmp_path):
    """AUTHSVC_KEY_ENCRYPTION_KEY_FILE is read when the key itself is unset; a file
    that cannot be read or holds no key is named in the error."""
    path = tmp_path / "kek"
    path.write_text(KEY + "\n")
    (tmp_path / "bad").write_text("not a key\n")

    settings = Settings.from_env({"AUTHSVC_KEY_ENCRYPTION_KEY_FILE": str(path)})
    with pytest.raises(ConfigError) as unreadable:
        Settings.from_env({"AUTHSVC_KEY_ENCRYPTION_KEY_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigError) as invalid:
        Settings.from_env({"AUTHSVC_KEY_ENCRYPTION_KEY_FILE": str(tmp_path / "bad")})

    assert settings.key_encryption_key == Secret(b"k" * 32)
    assert str(unreadable.value) == (
        "AUTHSVC_KEY_ENCRYPTION_KEY_FILE cannot be read: No such file or directory")
    assert str(invalid.value) == (
        "AUTHSVC_KEY_ENCRYPTION_KEY_FILE is invalid: expected 32 bytes in base64url")


@pytest.mark.parametrize(("environ", "message"), [
    ({"AUTHSVC_TLS_KEY_FILE": "k.pem"},
     "AUTHSVC_TLS_CERT_FILE and AUTHSVC_TLS_KEY_FILE must be set together"),
    ({"AUTHSVC_TLS_CLIENT_CA_FILE": "ca.pem"},
     "AUTHSVC_TLS_CLIENT_CA_FILE needs AUTHSVC_TLS_CERT_FILE and _KEY_FILE"),
    ({"AUTHSVC_OUTBOX_RETRY_BASE": "60", "AUTHSVC_OUTBOX_RETRY_MAX": "30"},
     "AUTHSVC_OUTBOX_RETRY_MAX must be at least AUTHSVC_OUTBOX_RETRY_BASE"),
    ({"AUTHSVC_WEBAUTHN_RP_ID": "example.com", "AUTHSVC_WEBAUTHN_ORIGINS": "http://example.com"},
     "AUTHSVC_WEBAUTHN_ORIGINS must be https:// origins (or http://localhost…)"),
    ({"AUTHSVC_SESSION_TTL": "0", "AUTHSVC_SESSION_IDLE_TTL": "0"},
     "AUTHSVC_SESSION_TTL must be at least 1"),
])
def test_values_are_checked_on_their_own_before_how_they_fit_together(environ, message):
    """A setting that needs another names itself and the other; a value wrong on its
    own is reported before a mismatch between two."""
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(environ)

    assert str(refused.value) == message


def test_origins_are_not_checked_while_passkeys_are_off():
    """Without AUTHSVC_WEBAUTHN_RP_ID the origins are not used, and not refused."""
    settings = Settings.from_env({"AUTHSVC_WEBAUTHN_ORIGINS": "http://example.com/"})

    assert settings.webauthn_origins == ("http://example.com",)


def test_a_declaration_needs_a_kind_only_where_its_type_does_not_say():
    """int, float, str, bool and Path (optional or Secret) parse by their type; any
    other type without kind= is refused when the declarations are read."""
    area = Area("Toy", "A class declared like Settings.")

    @dataclasses.dataclass(frozen=True)
    class Plain:
        port: int = area.setting(1, "a port")
        password: Secret[str] | None = area.setting(None, "a password")  # noqa: RUF009 (a field)

    @dataclasses.dataclass(frozen=True)
    class Unsaid:
        hosts: tuple[str, ...] = area.setting((), "some hosts")

    assert [(item.variable, item.kind.takes, item.secret) for item in declared(Plain)] == [
        ("AUTHSVC_PORT", "a whole number", False), ("AUTHSVC_PASSWORD", "text", True)]
    with pytest.raises(TypeError, match=r"Unsaid\.hosts needs kind="):
        declared(Unsaid)
