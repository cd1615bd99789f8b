"""Settings, read once into a frozen, typed object.

``Settings.from_env`` reads the ``AUTHSVC_*`` variables; a missing or invalid
value raises ``ConfigError`` naming the variable. Tests build settings with
``Settings(...)`` or ``Settings.from_env({...})`` directly. Secrets are
wrapped in ``Secret`` so they print masked.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import difflib
import ipaddress
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError

T = TypeVar("T")
log = logging.getLogger("authsvc")

SIGNING_ALGORITHMS = ("ES256", "EdDSA", "RS256")
ARGON2_PROFILES = ("owasp", "rfc9106-low-memory", "test-only-cheapest")
SIGNUP_MODES = ("off", "open", "verify")
CODE_FORMATS = ("digits", "token")
EMAIL_CHANNELS = ("smtp", "webhook")
DAY = 86_400
DEFAULT_IDLE_TTL = 7 * DAY
MAX_ACCESS_TOKEN_TTL = DAY


class Secret(Generic[T]):
    """A value that never shows itself in repr, str or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def reveal(self) -> T:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[type[Secret[T]], tuple[T]]:  # picklable for worker processes
        return (Secret, (self._value,))


def mask_url(url: str) -> str:
    """The database URL with its password replaced, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything authsvc reads from its environment. See README for each."""

    database_url: Secret[str] | None = None
    data_dir: Path = Path(".authsvc")
    listen: str = "127.0.0.1:50051"
    workers: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    issuer: str = "authsvc"
    audience: str = "authsvc"
    signing_alg: str = "ES256"
    access_token_ttl: int = 900
    session_ttl: int = 30 * DAY
    session_idle_ttl: int = DEFAULT_IDLE_TTL  # from_env: AUTHSVC_SESSION_TTL if shorter
    refresh_reuse_interval: int = 10
    clock_leeway: int = 30
    key_encryption_key: Secret[bytes] | None = None
    revocation_max_staleness: float = 5.0
    argon2_profile: str = "owasp"
    hash_threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    token_cache_size: int = 10_000
    db_pool_size: int = 10
    db_timeout: float = 5.0
    reflection: bool = True
    shutdown_grace: float = 10.0
    metrics_listen: str | None = "127.0.0.1:9464"
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    trusted_proxies: tuple[str, ...] = ()
    throttle_identifier_free: int = 10
    throttle_address_free: int = 100
    throttle_pair_free: int = 5
    throttle_refresh_free: int = 20
    throttle_base_delay: float = 1.0
    throttle_max_delay: float = 900.0
    throttle_window: float = 3600.0
    throttle_trust_ttl: float = 30 * DAY
    throttle_ipv6_prefix: int = 64
    audit_retention: float = 90 * DAY
    audit_refreshes: bool = True
    housekeeping_interval: float = 30.0
    watch_streams_per_peer: int = 8
    signup: str = "off"
    code_ttl: int = 900
    code_format: str = "digits"
    link_base_url: str | None = None
    smtp_url: Secret[str] | None = None
    smtp_from: str | None = None
    webhook_url: str | None = None
    webhook_secret: Secret[bytes] | None = None
    email_channel: str = "smtp"
    outbox_retry_base: float = 5.0
    outbox_retry_max: float = 900.0
    outbox_max_attempts: int = 30
    outbox_send_timeout: float = 30.0
    outbox_lease: float = 30.0
    mfa_token_ttl: int = 300
    step_up_max_age: int = 300
    webauthn_rp_id: str | None = None  # passkeys are off until it is set
    webauthn_rp_name: str = "authsvc"
    webauthn_origins: tuple[str, ...] = ()
    passkey_sign_in: bool = False

    def __post_init__(self) -> None:
        _check(self.signing_alg in SIGNING_ALGORITHMS, "AUTHSVC_SIGNING_ALG",
               f"must be one of {', '.join(SIGNING_ALGORITHMS)}")
        _check(self.argon2_profile in ARGON2_PROFILES, "AUTHSVC_ARGON2_PROFILE",
               f"must be one of {', '.join(ARGON2_PROFILES)}")
        _check(self.session_ttl >= 1, "AUTHSVC_SESSION_TTL", "must be at least 1")
        _check(1 <= self.access_token_ttl <= MAX_ACCESS_TOKEN_TTL, "AUTHSVC_ACCESS_TOKEN_TTL",
               f"must be between 1 and {MAX_ACCESS_TOKEN_TTL} seconds (a day): access tokens "
               "are checked without the database, so their lifetime is how long a stolen "
               "one works")
        _check(self.access_token_ttl < self.session_ttl, "AUTHSVC_ACCESS_TOKEN_TTL",
               "must be shorter than AUTHSVC_SESSION_TTL")
        _check(1 <= self.session_idle_ttl <= self.session_ttl, "AUTHSVC_SESSION_IDLE_TTL",
               "must be between 1 and AUTHSVC_SESSION_TTL")
        _check(0 <= self.refresh_reuse_interval <= 300, "AUTHSVC_REFRESH_REUSE_INTERVAL",
               "must be between 0 and 300 seconds")
        _check(0 <= self.clock_leeway <= 300, "AUTHSVC_CLOCK_LEEWAY",
               "must be between 0 and 300 seconds")
        _check(self.workers >= 1, "AUTHSVC_WORKERS", "must be at least 1")
        _check(self.hash_threads >= 1, "AUTHSVC_HASH_THREADS", "must be at least 1")
        _check(self.token_cache_size >= 0, "AUTHSVC_TOKEN_CACHE_SIZE", "must be 0 or more")
        _check(self.db_pool_size >= 1, "AUTHSVC_DB_POOL_SIZE", "must be at least 1")
        _check(self.db_timeout > 0, "AUTHSVC_DB_TIMEOUT", "must be positive")
        _check(self.revocation_max_staleness >= 0, "AUTHSVC_REVOCATION_MAX_STALENESS",
               "must be 0 or more")
        _check(bool(self.issuer), "AUTHSVC_ISSUER", "must not be empty")
        _check(bool(self.audience), "AUTHSVC_AUDIENCE", "must not be empty")
        parse_listen(self.listen)
        for name in _THROTTLE_VARIABLES:
            _check(getattr(self, name) >= 0, "AUTHSVC_" + name.upper(), "must be 0 or more")
        _check(self.throttle_base_delay > 0, "AUTHSVC_THROTTLE_BASE_DELAY", "must be positive")
        _check(32 <= self.throttle_ipv6_prefix <= 128, "AUTHSVC_THROTTLE_IPV6_PREFIX",
               "must be between 32 and 128")
        _check(self.shutdown_grace >= 0, "AUTHSVC_SHUTDOWN_GRACE", "must be 0 or more")
        _check(self.watch_streams_per_peer >= 1, "AUTHSVC_WATCH_STREAMS_PER_PEER",
               "must be at least 1")
        _check(self.audit_retention >= 0, "AUTHSVC_AUDIT_RETENTION",
               "must be 0 (keep everything) or more seconds")
        _check(0.1 <= self.housekeeping_interval <= 3600, "AUTHSVC_HOUSEKEEPING_INTERVAL",
               "must be between 0.1 and 3600 seconds")
        _check(30 <= self.mfa_token_ttl <= 3600, "AUTHSVC_MFA_TOKEN_TTL",
               "must be between 30 and 3600 seconds")
        _check(1 <= self.step_up_max_age <= DAY, "AUTHSVC_STEP_UP_MAX_AGE",
               "must be between 1 and 86400 seconds")
        if self.webauthn_rp_id is not None:
            _check(bool(self.webauthn_origins), "AUTHSVC_WEBAUTHN_ORIGINS",
                   "must list the origins passkeys are used from (e.g. https://example.com)")
            for origin in self.webauthn_origins:
                _check(origin.startswith(("https://", "http://localhost")),
                       "AUTHSVC_WEBAUTHN_ORIGINS",
                       "must be https:// origins (or http://localhost…)")
        _check(not self.passkey_sign_in or self.webauthn_rp_id is not None,
               "AUTHSVC_PASSKEY_SIGN_IN", "needs AUTHSVC_WEBAUTHN_RP_ID")
        if self.metrics_listen is not None:
            _check(_is_listen(self.metrics_listen), "AUTHSVC_METRICS_LISTEN",
                   "must be HOST:PORT or off")
        _check((self.tls_cert_file is None) == (self.tls_key_file is None),
               "AUTHSVC_TLS_CERT_FILE", "and AUTHSVC_TLS_KEY_FILE must be set together")
        _check(self.tls_client_ca_file is None or self.tls_cert_file is not None,
               "AUTHSVC_TLS_CLIENT_CA_FILE", "needs AUTHSVC_TLS_CERT_FILE and _KEY_FILE")
        _check(self.signup in SIGNUP_MODES, "AUTHSVC_SIGNUP",
               f"must be one of {', '.join(SIGNUP_MODES)}")
        _check(self.code_format in CODE_FORMATS, "AUTHSVC_CODE_FORMAT",
               f"must be one of {', '.join(CODE_FORMATS)}")
        _check(60 <= self.code_ttl <= DAY, "AUTHSVC_CODE_TTL",
               "must be between 60 and 86400 seconds")
        _check(self.email_channel in EMAIL_CHANNELS, "AUTHSVC_EMAIL_CHANNEL",
               f"must be one of {', '.join(EMAIL_CHANNELS)}")
        _check(self.outbox_retry_base > 0, "AUTHSVC_OUTBOX_RETRY_BASE", "must be positive")
        _check(self.outbox_retry_max >= self.outbox_retry_base, "AUTHSVC_OUTBOX_RETRY_MAX",
               "must be at least AUTHSVC_OUTBOX_RETRY_BASE")
        _check(self.outbox_max_attempts >= 1, "AUTHSVC_OUTBOX_MAX_ATTEMPTS",
               "must be at least 1")
        _check(self.outbox_send_timeout > 0, "AUTHSVC_OUTBOX_SEND_TIMEOUT", "must be positive")
        _check(self.outbox_lease >= 3, "AUTHSVC_OUTBOX_LEASE",
               "must be at least 3 seconds (leases are renewed every third of one)")
        if self.smtp_url is not None:
            _check(urlsplit(self.smtp_url.reveal()).scheme in ("smtp", "smtps"),
                   "AUTHSVC_SMTP_URL", "must be smtp://USER:PASSWORD@HOST:PORT or smtps://…")
            _check(bool(self.smtp_from), "AUTHSVC_SMTP_FROM",
                   "must be set when AUTHSVC_SMTP_URL is")
        if self.webhook_url is not None:
            _check(urlsplit(self.webhook_url).scheme in ("http", "https"),
                   "AUTHSVC_WEBHOOK_URL", "must be an http:// or https:// URL")
            _check(self.webhook_secret is not None, "AUTHSVC_WEBHOOK_SECRET",
                   "must be set when AUTHSVC_WEBHOOK_URL is")
        if self.link_base_url is not None:
            _check(urlsplit(self.link_base_url).scheme in ("http", "https"),
                   "AUTHSVC_LINK_BASE_URL", "must be an http:// or https:// URL")
        if self.key_encryption_key is not None:
            _check(len(self.key_encryption_key.reveal()) == 32, "AUTHSVC_KEY_ENCRYPTION_KEY",
                   "must be 32 bytes")

    @property
    def embedded(self) -> bool:
        """True when authsvc runs its own PostgreSQL in ``data_dir``."""
        return self.database_url is None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 overrides: Mapping[str, object] | None = None) -> Settings:
        """Settings from ``AUTHSVC_*`` variables; ``overrides`` (CLI flags) win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        reader = _Reader(env)
        values["database_url"] = reader.get("AUTHSVC_DATABASE_URL", Secret)
        values["data_dir"] = reader.get("AUTHSVC_DATA_DIR", Path)
        values["listen"] = reader.get("AUTHSVC_LISTEN", str)
        values["workers"] = reader.get("AUTHSVC_WORKERS", int)
        values["issuer"] = reader.get("AUTHSVC_ISSUER", str)
        values["audience"] = reader.get("AUTHSVC_AUDIENCE", str)
        values["signing_alg"] = reader.get("AUTHSVC_SIGNING_ALG", str)
        values["access_token_ttl"] = reader.get("AUTHSVC_ACCESS_TOKEN_TTL", int)
        values["session_ttl"] = reader.get("AUTHSVC_SESSION_TTL", int)
        values["session_idle_ttl"] = reader.get("AUTHSVC_SESSION_IDLE_TTL", int)
        values["refresh_reuse_interval"] = reader.get("AUTHSVC_REFRESH_REUSE_INTERVAL", int)
        values["clock_leeway"] = reader.get("AUTHSVC_CLOCK_LEEWAY", int)
        values["revocation_max_staleness"] = reader.get(
            "AUTHSVC_REVOCATION_MAX_STALENESS", float)
        values["argon2_profile"] = reader.get("AUTHSVC_ARGON2_PROFILE", str)
        values["hash_threads"] = reader.get("AUTHSVC_HASH_THREADS", int)
        values["token_cache_size"] = reader.get("AUTHSVC_TOKEN_CACHE_SIZE", int)
        values["db_pool_size"] = reader.get("AUTHSVC_DB_POOL_SIZE", int)
        values["db_timeout"] = reader.get("AUTHSVC_DB_TIMEOUT", float)
        values["reflection"] = reader.get("AUTHSVC_REFLECTION", _boolean)
        values["shutdown_grace"] = reader.get("AUTHSVC_SHUTDOWN_GRACE", float)
        values["audit_retention"] = reader.get("AUTHSVC_AUDIT_RETENTION", float)
        values["audit_refreshes"] = reader.get("AUTHSVC_AUDIT_REFRESHES", _boolean)
        values["housekeeping_interval"] = reader.get("AUTHSVC_HOUSEKEEPING_INTERVAL", float)
        values["watch_streams_per_peer"] = reader.get("AUTHSVC_WATCH_STREAMS_PER_PEER", int)
        values["signup"] = reader.get("AUTHSVC_SIGNUP", str)
        values["code_ttl"] = reader.get("AUTHSVC_CODE_TTL", int)
        values["code_format"] = reader.get("AUTHSVC_CODE_FORMAT", str)
        values["link_base_url"] = reader.get("AUTHSVC_LINK_BASE_URL", str)
        values["smtp_url"] = reader.get("AUTHSVC_SMTP_URL", Secret)
        values["smtp_from"] = reader.get("AUTHSVC_SMTP_FROM", str)
        values["webhook_url"] = reader.get("AUTHSVC_WEBHOOK_URL", str)
        values["webhook_secret"] = reader.get("AUTHSVC_WEBHOOK_SECRET", webhook_secret)
        values["email_channel"] = reader.get("AUTHSVC_EMAIL_CHANNEL", str)
        values["outbox_retry_base"] = reader.get("AUTHSVC_OUTBOX_RETRY_BASE", float)
        values["outbox_retry_max"] = reader.get("AUTHSVC_OUTBOX_RETRY_MAX", float)
        values["outbox_max_attempts"] = reader.get("AUTHSVC_OUTBOX_MAX_ATTEMPTS", int)
        values["outbox_send_timeout"] = reader.get("AUTHSVC_OUTBOX_SEND_TIMEOUT", float)
        values["outbox_lease"] = reader.get("AUTHSVC_OUTBOX_LEASE", float)
        values["mfa_token_ttl"] = reader.get("AUTHSVC_MFA_TOKEN_TTL", int)
        values["step_up_max_age"] = reader.get("AUTHSVC_STEP_UP_MAX_AGE", int)
        values["webauthn_rp_id"] = reader.get("AUTHSVC_WEBAUTHN_RP_ID", str)
        values["webauthn_rp_name"] = reader.get("AUTHSVC_WEBAUTHN_RP_NAME", str)
        values["webauthn_origins"] = reader.get(
            "AUTHSVC_WEBAUTHN_ORIGINS",
            lambda raw: tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip()))
        values["passkey_sign_in"] = reader.get("AUTHSVC_PASSKEY_SIGN_IN", _boolean)
        metrics = reader.get("AUTHSVC_METRICS_LISTEN", str)
        values["tls_cert_file"] = reader.get("AUTHSVC_TLS_CERT_FILE", Path)
        values["tls_key_file"] = reader.get("AUTHSVC_TLS_KEY_FILE", Path)
        values["tls_client_ca_file"] = reader.get("AUTHSVC_TLS_CLIENT_CA_FILE", Path)
        values["trusted_proxies"] = reader.get("AUTHSVC_TRUSTED_PROXIES", _networks)
        for name, parse in _THROTTLE_VARIABLES.items():
            values[name] = reader.get("AUTHSVC_" + name.upper(), parse)
        kek = reader.get("AUTHSVC_KEY_ENCRYPTION_KEY", _key)
        kek_file = reader.get("AUTHSVC_KEY_ENCRYPTION_KEY_FILE", Path)
        if kek is None and isinstance(kek_file, Path):
            kek = read_key_file(kek_file)
        values["key_encryption_key"] = kek
        values.update(overrides or {})
        if values["session_idle_ttl"] is None and values["session_ttl"] is not None:
            # Unset, the idle lifetime is 7 days or the whole session, whichever is shorter.
            values["session_idle_ttl"] = min(DEFAULT_IDLE_TTL, values["session_ttl"])
        if values["hash_threads"] is None:
            # Unset: the cores shared out among the workers (at least one each). With
            # every worker hashing on every core, a burst of sign-ins ran workers x cores
            # threads that crowded out the event loops: Validate's p99 under a SignIn
            # burst was 4-5x idle against 3.3-3.5x, and sign-ins no faster (README,
            # "Tail latency under hashing").
            cores = os.cpu_count() or 1
            values["hash_threads"] = max(1, cores // (values["workers"] or cores))
        for name, closest in reader.unknown():
            hint = f"; did you mean {closest}?" if closest else ""
            log.warning("%s is not a setting of authsvc and is ignored%s", name, hint)
        chosen = {k: v for k, v in values.items() if v is not None}
        if metrics is not None:  # after the filter: "off" is None, which it would drop
            chosen["metrics_listen"] = None if metrics.lower() == "off" else metrics
        return cls(**chosen)


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) → (host, port)."""
    _check(_is_listen(listen), "AUTHSVC_LISTEN", "must be HOST:PORT")
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


# Variables that other parts read (scripts, tests, the health check), not Settings.
_READ_ELSEWHERE = frozenset({
    "AUTHSVC_VENV", "AUTHSVC_TOOLS", "AUTHSVC_TEST_DATABASE_URL", "AUTHSVC_HEALTHCHECK_TIMEOUT",
    "AUTHSVC_HEALTHCHECK_RESTARTED",
    "AUTHSVC_GATEWAY_LISTEN", "AUTHSVC_GATEWAY_UPSTREAM"})

_THROTTLE_VARIABLES: dict[str, Callable[[str], Any]] = {
    "throttle_identifier_free": int, "throttle_address_free": int, "throttle_pair_free": int,
    "throttle_refresh_free": int, "throttle_base_delay": float, "throttle_max_delay": float,
    "throttle_window": float, "throttle_trust_ttl": float, "throttle_ipv6_prefix": int,
}


def _is_listen(listen: str) -> bool:
    host, sep, port = listen.rpartition(":")
    return bool(sep) and bool(host) and port.isdigit() and int(port) <= 65535


def _networks(raw: str) -> tuple[str, ...]:
    """Comma-separated addresses or CIDR networks, validated."""
    networks = tuple(part.strip() for part in raw.split(",") if part.strip())
    for network in networks:
        ipaddress.ip_network(network, strict=False)  # ValueError names the bad one
    return networks


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def _check(ok: bool, variable: str, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{variable} {rule}")


_EXPECTED: dict[Any, str] = {int: "a whole number", float: "a number"}


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.read: set[str] = set()

    def get(self, name: str, parse: Callable[[str], T]) -> T | None:
        self.read.add(name)
        raw = self._env.get(name)
        if raw is None or raw == "":
            return None
        try:
            return parse(raw.strip() if parse in _EXPECTED else raw)
        except (ValueError, ConfigError) as exc:
            # Python's own text ("invalid literal for int() with base 10") helps nobody.
            expected = _EXPECTED.get(parse)
            detail = f"expected {expected}" if expected is not None else str(exc)
            raise ConfigError(f"{name} is invalid: {detail}") from None

    def unknown(self) -> list[tuple[str, str | None]]:
        """AUTHSVC_* variables set but never read, each with the closest known name."""
        known = sorted(self.read | _READ_ELSEWHERE)
        return [(name, next(iter(difflib.get_close_matches(name, known, 1, 0.75)), None))
                for name in sorted(self._env)
                if name.startswith("AUTHSVC_") and name not in known]


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _key(raw: str) -> Secret[bytes]:
    try:
        key = base64.urlsafe_b64decode(raw.strip() + "=" * (-len(raw.strip()) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("expected 32 bytes in base64url") from None
    if len(key) != 32:
        raise ValueError("expected 32 bytes in base64url")
    return Secret(key)


def webhook_secret(raw: str) -> Secret[bytes]:
    """A Standard Webhooks secret: ``whsec_`` and base64 of 24 to 64 random bytes."""
    body = raw.strip().removeprefix("whsec_")
    if body == raw.strip():
        raise ValueError("expected whsec_ and base64 (a Standard Webhooks secret)")
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("expected whsec_ and base64 (a Standard Webhooks secret)") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("expected 24 to 64 bytes after whsec_")
    return Secret(key)


def read_key_file(path: Path) -> Secret[bytes]:
    try:
        raw = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"AUTHSVC_KEY_ENCRYPTION_KEY_FILE cannot be read: {exc.strerror}") from None
    try:
        return _key(raw)
    except ValueError as exc:
        raise ConfigError(f"AUTHSVC_KEY_ENCRYPTION_KEY_FILE is invalid: {exc}") from None
