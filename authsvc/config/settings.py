"""Every setting of authsvc, each declared once, grouped by area.

A declaration gives the default, a one-line doc and the checks; the
variable's name (``AUTHSVC_`` and the field's name in upper case), its parser
(from the annotation, or ``kind=``) and whether it is secret (``Secret[...]``)
follow from it. ``Settings`` stays one flat, frozen object, so
``Settings(listen=...)`` and ``dataclasses.replace(settings, ...)`` name a
setting the way its variable does; the areas group the declarations and the
reference page (``docs/configuration.md``, made by ``python -m authsvc.config``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from .declare import (
    NOT_EMPTY,
    POSITIVE,
    ZERO_OR_MORE,
    Area,
    Relation,
    Rule,
    at_least,
    between,
    load,
    one_of,
    validate,
)
from .values import KEY, LISTEN_OR_OFF, NETWORKS, ORIGINS, WEBHOOK_KEY, Secret, is_listen

SIGNING_ALGORITHMS = ("ES256", "EdDSA", "RS256")
ARGON2_PROFILES = ("owasp", "rfc9106-low-memory", "test-only-cheapest")
SIGNUP_MODES = ("off", "open", "verify")
CODE_FORMATS = ("digits", "token")
EMAIL_CHANNELS = ("smtp", "webhook")
DAY = 86_400
DEFAULT_IDLE_TTL = 7 * DAY
MAX_ACCESS_TOKEN_TTL = DAY

# Variables that other parts read (scripts, tests, the health check), not Settings.
READ_ELSEWHERE = frozenset({
    "AUTHSVC_VENV", "AUTHSVC_TOOLS", "AUTHSVC_TEST_DATABASE_URL", "AUTHSVC_HEALTHCHECK_TIMEOUT",
    "AUTHSVC_HEALTHCHECK_RESTARTED",
    "AUTHSVC_GATEWAY_LISTEN", "AUTHSVC_GATEWAY_UPSTREAM"})


def _cores() -> int:
    return os.cpu_count() or 1


def _scheme(schemes: tuple[str, ...], says: str) -> Rule:
    return Rule(lambda url: urlsplit(url).scheme in schemes, says)


HTTP_URL = _scheme(("http", "https"), "must be an http:// or https:// URL")

SERVER = Area("Server", "The gRPC server and its worker processes.")
TLS = Area("TLS", "Without these, authsvc serves plaintext gRPC (for loopback, or "
           "behind a proxy or mesh that terminates TLS).")
DATABASE = Area("Database and keys at rest", "Where the data lives, and the key that "
                "encrypts the signing keys stored there.")
TOKENS = Area("Tokens and sessions", "What access tokens say and how long tokens and "
              "sessions live.")
PASSWORDS = Area("Passwords", "How passwords are hashed.")
THROTTLE = Area("Throttling", "The sign-in and refresh tarpits, and whose client "
                "address is believed.")
ACCOUNTS = Area("Accounts and codes", "Sign-up, and the codes of verification and "
                "password reset.")
DELIVERY = Area("Delivery (the outbox)", "How messages with codes reach people, and how "
                "often a failed one is tried again.")
FACTORS = Area("Second factors and passkeys", "MFA sign-in, step-up, and WebAuthn.")
FEDERATION = Area("Sign-in with other providers", "OpenID Connect and OAuth 2.0 identity "
                  "providers (docs/guides/federation.md), and where a browser may be sent "
                  "after signing in.")
OPERATIONS = Area("Observability and housekeeping", "Metrics, the audit log, and the "
                  "background passes of each worker.")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything authsvc reads from its environment (docs/configuration.md)."""

    listen: str = SERVER.setting(
        "127.0.0.1:50051", "gRPC listen address", Rule(is_listen, "must be HOST:PORT"))
    workers: int = SERVER.setting(
        None, "worker processes sharing the port (SO_REUSEPORT)", at_least(1),
        default_factory=_cores, shown="number of cores")
    reflection: bool = SERVER.setting(True, "gRPC server reflection")
    shutdown_grace: float = SERVER.setting(
        10.0, "seconds in-flight calls get to finish on SIGTERM", ZERO_OR_MORE)
    watch_streams_per_peer: int = SERVER.setting(
        8, "concurrent `WatchRevocations` streams one client address may hold on a replica; "
        "each worker admits this ÷ workers (at least 1)", at_least(1))

    tls_cert_file: Path | None = TLS.setting(
        None, "PEM certificate chain: serve TLS (with the key)",
        Relation(lambda s: (s.tls_cert_file is None) == (s.tls_key_file is None),
                 "and AUTHSVC_TLS_KEY_FILE must be set together"))
    tls_key_file: Path | None = TLS.setting(None, "PEM private key of that certificate")
    tls_client_ca_file: Path | None = TLS.setting(
        None, "PEM CA: require client certificates (mTLS)",
        Relation(lambda s: s.tls_client_ca_file is None or s.tls_cert_file is not None,
                 "needs AUTHSVC_TLS_CERT_FILE and _KEY_FILE"))

    database_url: Secret[str] | None = DATABASE.setting(
        None, "PostgreSQL URL; when set, authsvc starts no database",
        shown="unset: embedded PostgreSQL")
    data_dir: Path = DATABASE.setting(
        Path(".authsvc"), "embedded PostgreSQL data and its key-encryption key")
    key_encryption_key: Secret[bytes] | None = DATABASE.setting(
        None, "encrypts signing keys at rest; or name a file holding it in "
        "`AUTHSVC_KEY_ENCRYPTION_KEY_FILE`", Rule(lambda key: len(key) == 32, "must be 32 bytes"),
        kind=KEY, file_variant=True,
        shown="embedded: generated in the data dir; otherwise **required**")
    db_pool_size: int = DATABASE.setting(
        10, "connections per worker for calls (plus one for the revocation listener)",
        at_least(1))
    db_timeout: float = DATABASE.setting(
        5.0, "seconds a call's database work may take in all (pool wait, statements, "
        "hand-back), and for connecting (to each host of a multi-host URL)", POSITIVE)

    issuer: str = TOKENS.setting("authsvc", "`iss` of access tokens", NOT_EMPTY)
    audience: str = TOKENS.setting("authsvc", "`aud` of access tokens", NOT_EMPTY)
    signing_alg: str = TOKENS.setting(
        "ES256", "algorithm of new signing keys", one_of(SIGNING_ALGORITHMS))
    access_token_ttl: int = TOKENS.setting(
        900, "access-token lifetime, seconds",
        Rule(lambda ttl: 1 <= ttl <= MAX_ACCESS_TOKEN_TTL,
             f"must be between 1 and {MAX_ACCESS_TOKEN_TTL} seconds (a day): access tokens "
             "are checked without the database, so their lifetime is how long a stolen "
             "one works"),
        Relation(lambda s: s.access_token_ttl < s.session_ttl,
                 "must be shorter than AUTHSVC_SESSION_TTL"))
    session_ttl: int = TOKENS.setting(30 * DAY, "absolute session lifetime, seconds",
                                      at_least(1))
    session_idle_ttl: int = TOKENS.setting(
        DEFAULT_IDLE_TTL, "idle session lifetime, seconds",
        Rule(lambda ttl: ttl >= 1, "must be between 1 and AUTHSVC_SESSION_TTL"),
        Relation(lambda s: s.session_idle_ttl <= s.session_ttl,
                 "must be between 1 and AUTHSVC_SESSION_TTL"),
        derive=lambda v: min(DEFAULT_IDLE_TTL, v["session_ttl"]),
        shown="`604800` (7 days), or the session TTL if shorter")
    refresh_reuse_interval: int = TOKENS.setting(
        10, "grace interval for a spent refresh token, seconds", between(0, 300, " seconds"))
    clock_leeway: int = TOKENS.setting(
        30, "leeway on exp/nbf/iat, seconds", between(0, 300, " seconds"))
    revocation_max_staleness: float = TOKENS.setting(
        5.0, "seconds the revocation set is trusted after its feed last confirmed it",
        ZERO_OR_MORE)
    access_token_profile: bool = TOKENS.setting(
        False, "access tokens carry the user's `email`, `phone_number`, "
        "`preferred_username` and verified flags (OIDC names), so `Validate` answers a "
        "profile without the database; off because tokens travel (headers, proxies, "
        "logs) and a JWT's payload is readable by anyone holding it")
    token_cache_size: int = TOKENS.setting(
        10_000, "verified access tokens cached per worker", ZERO_OR_MORE)

    argon2_profile: str = PASSWORDS.setting(
        "owasp", "`owasp` (m=19 MiB, t=2, p=1), `rfc9106-low-memory` (m=64 MiB, t=3, p=4), "
        "`test-only-cheapest` (tests only)", one_of(ARGON2_PROFILES))
    hash_threads: int = PASSWORDS.setting(
        None, "argon2 threads per worker", at_least(1), default_factory=_cores,
        # Unset: the cores shared out among the workers (at least one each). With every
        # worker hashing on every core, a burst of sign-ins ran workers x cores threads
        # that crowded out the event loops: Validate's p99 under a SignIn burst was 4-5x
        # idle against 3.3-3.5x, and sign-ins no faster (README, "Tail latency under
        # hashing").
        derive=lambda v: max(1, _cores() // max(1, v["workers"])),
        shown="cores ÷ workers (at least 1)")

    throttle_identifier_free: int = THROTTLE.setting(
        10, "failures per identifier before its tarpit", ZERO_OR_MORE)
    throttle_address_free: int = THROTTLE.setting(
        100, "failures per client address before its tarpit", ZERO_OR_MORE)
    throttle_pair_free: int = THROTTLE.setting(
        5, "failures per identifier + address before its tarpit", ZERO_OR_MORE)
    throttle_refresh_free: int = THROTTLE.setting(
        20, "refresh failures per address before its tarpit", ZERO_OR_MORE)
    throttle_base_delay: float = THROTTLE.setting(
        1.0, "first block, seconds; doubles with each further failure", ZERO_OR_MORE,
        POSITIVE)
    throttle_max_delay: float = THROTTLE.setting(900.0, "longest block, seconds", ZERO_OR_MORE)
    throttle_window: float = THROTTLE.setting(
        3600.0, "a counter forgets its failures this long after the last, seconds",
        ZERO_OR_MORE)
    throttle_trust_ttl: float = THROTTLE.setting(
        30 * DAY, "how long a successful (identifier, address) pair, and a device token, is "
        "trusted, seconds", ZERO_OR_MORE)
    throttle_ipv6_prefix: int = THROTTLE.setting(
        64, "IPv6 client addresses count by this prefix", ZERO_OR_MORE, between(32, 128))
    trusted_proxies: tuple[str, ...] = THROTTLE.setting(
        (), "proxies whose right-most `x-forwarded-for` hop is the client address",
        kind=NETWORKS)

    signup: str = ACCOUNTS.setting(
        "off", "`off`, `open` or `verify`: who may create accounts, and whether they must "
        "verify an email or phone first", one_of(SIGNUP_MODES))
    code_ttl: int = ACCOUNTS.setting(
        900, "lifetime of verification and reset codes, seconds",
        between(60, DAY, " seconds"))
    code_format: str = ACCOUNTS.setting(
        "digits", "`digits` (8) or `token` (43 characters, for links)", one_of(CODE_FORMATS))
    link_base_url: str | None = ACCOUNTS.setting(
        None, "adds a link with the code to each message", HTTP_URL)

    smtp_url: Secret[str] | None = DELIVERY.setting(
        None, "`smtp://USER:PASSWORD@HOST:PORT[?starttls=true]` or `smtps://…`: email by SMTP",
        _scheme(("smtp", "smtps"), "must be smtp://USER:PASSWORD@HOST:PORT or smtps://…"))
    smtp_from: str | None = DELIVERY.setting(
        None, "the From address",
        Relation(lambda s: s.smtp_url is None or bool(s.smtp_from),
                 "must be set when AUTHSVC_SMTP_URL is"), shown="unset (required with the URL)")
    webhook_url: str | None = DELIVERY.setting(
        None, "where signed webhook events go (phone numbers; email too with "
        "`AUTHSVC_EMAIL_CHANNEL=webhook`)", HTTP_URL)
    webhook_secret: Secret[bytes] | None = DELIVERY.setting(
        None, "signs webhook events (Standard Webhooks)",
        Relation(lambda s: s.webhook_url is None or s.webhook_secret is not None,
                 "must be set when AUTHSVC_WEBHOOK_URL is"),
        kind=WEBHOOK_KEY, shown="unset (required with the URL)")
    email_channel: str = DELIVERY.setting(
        "smtp", "`smtp` or `webhook`: how email messages go", one_of(EMAIL_CHANNELS))
    outbox_retry_base: float = DELIVERY.setting(
        5.0, "seconds before a failed message is tried again, doubling each time", POSITIVE)
    outbox_retry_max: float = DELIVERY.setting(
        900.0, "the longest wait before a failed message is tried again, seconds",
        Relation(lambda s: s.outbox_retry_max >= s.outbox_retry_base,
                 "must be at least AUTHSVC_OUTBOX_RETRY_BASE"))
    outbox_max_attempts: int = DELIVERY.setting(
        30, "attempts before a message is kept as failed", at_least(1))
    outbox_send_timeout: float = DELIVERY.setting(
        30.0, "seconds one send may take, from connecting to the answer; then it counts "
        "as failed and is retried", POSITIVE)
    outbox_lease: float = DELIVERY.setting(
        30.0, "seconds a claimed message is a worker's unless renewed (renewed every third "
        "of it while the send goes on); a dead worker's claims run out within it",
        Rule(lambda value: value >= 3,
             "must be at least 3 seconds (leases are renewed every third of one)"))

    mfa_token_ttl: int = FACTORS.setting(
        300, "seconds an mfa_token lives", between(30, 3600, " seconds"))
    step_up_max_age: int = FACTORS.setting(
        300, "how recent a second factor must be to change factors, seconds",
        between(1, DAY, " seconds"))
    webauthn_rp_id: str | None = FACTORS.setting(
        None, "the relying party id, a registrable domain (`example.com`)",
        shown="unset: passkeys off")
    webauthn_rp_name: str = FACTORS.setting("authsvc", "the name authenticators show")
    webauthn_origins: tuple[str, ...] = FACTORS.setting(
        (), "origins passkeys are used from (`https://example.com`; `http://localhost…` for "
        "development)",
        Relation(lambda s: s.webauthn_rp_id is None or bool(s.webauthn_origins),
                 "must list the origins passkeys are used from (e.g. https://example.com)"),
        Relation(lambda s: s.webauthn_rp_id is None or all(
            origin.startswith(("https://", "http://localhost")) for origin in s.webauthn_origins),
            "must be https:// origins (or http://localhost…)"),
        kind=ORIGINS, shown="none (required with the rp id)")
    passkey_sign_in: bool = FACTORS.setting(
        False, "passwordless sign-in with a discoverable passkey",
        Relation(lambda s: not s.passkey_sign_in or s.webauthn_rp_id is not None,
                 "needs AUTHSVC_WEBAUTHN_RP_ID"))

    providers_file: Path | None = FEDERATION.setting(
        None, "TOML file of identity providers (`[providers.ID]`: `issuer` for OpenID "
        "Connect, or `authorize_url`, `token_url`, `userinfo_url` for OAuth 2.0; `client_id`, "
        "`client_secret_env` or `client_secret_file`, `redirect_uris`)",
        shown="unset: no providers")
    redirect_origins: tuple[str, ...] = FEDERATION.setting(
        (), "where a browser may be sent after signing in with a provider: origins "
        "(`https://app.example`, any path) or origins with a path prefix "
        "(`https://app.example/signed-in`)",
        Rule(lambda entries: all(urlsplit(e).scheme in ("http", "https")
                                 and urlsplit(e).hostname and not urlsplit(e).query
                                 and not urlsplit(e).fragment for e in entries),
             "must be http(s) origins, each with an optional path"),
        kind=ORIGINS, shown="none: no redirect after signing in")
    provider_timeout: float = FEDERATION.setting(
        5.0, "seconds each call to an identity provider may take in all (discovery, keys, "
        "token, user information)", between(0.1, 60, " seconds"))
    federation_flow_ttl: int = FEDERATION.setting(
        600, "seconds between starting a sign-in with a provider and its callback",
        between(30, 3600, " seconds"))

    metrics_listen: str | None = OPERATIONS.setting(
        "127.0.0.1:9464", "Prometheus metrics address",
        Rule(is_listen, "must be HOST:PORT or off"), kind=LISTEN_OR_OFF)
    audit_retention: float = OPERATIONS.setting(
        90 * DAY, "audit events older than this many seconds are pruned; `0` keeps everything",
        Rule(lambda seconds: seconds >= 0, "must be 0 (keep everything) or more seconds"))
    audit_refreshes: bool = OPERATIONS.setting(
        True, "audit every successful refresh (`refresh.success`); `false` keeps failures, "
        "reuse and everything else but drops the row per rotation, the largest share of the "
        "audit log at scale")
    housekeeping_interval: float = OPERATIONS.setting(
        30.0, "seconds between housekeeping passes (key ring reload, pruning) in each worker",
        between(0.1, 3600, " seconds"))

    def __post_init__(self) -> None:
        validate(self)

    @property
    def embedded(self) -> bool:
        """True when authsvc runs its own PostgreSQL in ``data_dir``."""
        return self.database_url is None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 overrides: Mapping[str, object] | None = None) -> Settings:
        """Settings from ``AUTHSVC_*`` variables; ``overrides`` (CLI flags) win.

        A variable that is empty counts as unset; one that is invalid raises
        ``ConfigError`` naming it; an ``AUTHSVC_*`` variable that is no setting is
        warned about, with the closest name.
        """
        env = os.environ if environ is None else environ
        return cls(**load(cls, env, overrides or {}, READ_ELSEWHERE))
