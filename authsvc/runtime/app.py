"""The composition root: the parts of one authsvc worker, wired together.

Every part is handed what it uses here and nowhere else. Start order: pool
→ key ring → revocation listener → housekeeping. Stop order is the reverse:
housekeeping, listener, pool, then the hashing threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from .. import tracing
from ..clock import Clock, system_clock
from ..config import Settings
from ..core.revocations import RevocationSet, retention_window
from ..core.tasks import raise_if_cancelled
from ..domain.accounts.admin import Accounts
from ..domain.accounts.codes import CodePolicy, Codes
from ..domain.accounts.password_change import ChangePassword, PasswordReset
from ..domain.accounts.passwords import Passwords
from ..domain.accounts.self_service import SelfService
from ..domain.accounts.signup import SignUp, Verification
from ..domain.accounts.user_import import UserImport
from ..domain.delivery.messages import Messages
from ..domain.delivery.outbox import Channel, Delivery
from ..domain.factors.ceremonies import SignedCeremonies
from ..domain.factors.mfa import SecondFactorSignIn
from ..domain.factors.otp import Factors
from ..domain.factors.passkeys import CEREMONY_TTL, Passkeys
from ..domain.federation import providers
from ..domain.federation.client import ProviderClient
from ..domain.federation.flows import Federation
from ..domain.federation.http import ProviderHttp
from ..domain.federation.state import SealedFlows
from ..domain.retention import Retention
from ..domain.sessions.devices import DeviceTokens
from ..domain.sessions.opener import Sessions
from ..domain.sessions.refresh import Refresh
from ..domain.sessions.refresh_tokens import RefreshTokens
from ..domain.sessions.revocation import Revocations
from ..domain.sessions.sign_out import SignOut
from ..domain.sessions.signin import SignIn
from ..domain.sessions.storage import Storage
from ..domain.throttling.sends import Sends
from ..domain.throttling.throttle import Throttle, ThrottlePolicy
from ..domain.tokens.issuer import Issuer, token_rules
from ..domain.tokens.keystore import KeyStore
from ..domain.tokens.profiles import Profiles
from ..domain.tokens.validator import Validator
from ..errors import ConfigError
from ..store import events as event_rows
from ..store import factors as factor_rows
from ..store import sessions as session_rows
from ..store import throttles as throttle_rows
from ..store import users as user_rows
from ..store.database import Connection, ConnectionBudget, Database, create_pool
from ..store.listener import RevocationListener
from ..store.throttles import Tarpit
from ..transport.observability import observe_foreign_hashes, observe_pruning, update_gauges
from .senders import SmtpChannel, WebhookChannel, channels
from .tracing import query_spans

log = logging.getLogger(__name__)

GAUGE_INTERVAL = 2.0
STOP_TIMEOUT = 10.0  # how long stopping waits for a background task
CALIBRATION_INTERVAL = 3600.0


class App:
    """Everything one worker needs to answer RPCs."""

    def __init__(self, settings: Settings, database_url: str, db: Database,
                 clock: Clock) -> None:
        if settings.key_encryption_key is None:  # Settings refuses to load without it
            raise ConfigError("AUTHSVC_KEY_ENCRYPTION_KEY (or _FILE) is not set")
        kek = settings.key_encryption_key.reveal()
        self.settings = settings
        self.db = db
        self.clock = clock
        # Issued and validated under; GetJwks publishes them to verifiers elsewhere.
        self.token_rules = rules = token_rules(settings)
        window = retention_window(settings.access_token_ttl, settings.clock_leeway)
        self.keystore = KeyStore(db, settings, clock)
        self.revocations = RevocationSet(window, settings.revocation_max_staleness)
        self.listener = RevocationListener(db.pool, self.revocations, clock, window,
                                           settings.db_timeout,
                                           settings.revocation_max_staleness,
                                           settings.clock_leeway)
        self.passwords = Passwords(settings.argon2_profile, settings.hash_threads)
        self.validator = Validator(db, self.keystore, self.revocations, rules, clock,
                                   settings.token_cache_size)
        storage = sql_storage(db)
        self.throttle = Throttle(db, storage.throttles, throttle_policy(settings), kek)
        refresh_tokens = RefreshTokens(kek)
        revoking = Revocations(db, clock, self.revocations)
        issuer = Issuer(self.keystore, rules, settings.access_token_ttl,
                        settings.session_idle_ttl)
        sessions = Sessions(storage, issuer, refresh_tokens, clock,
                            session_ttl=settings.session_ttl,
                            mfa_token_ttl=settings.mfa_token_ttl,
                            profiles=Profiles(db).of if settings.access_token_profile else None)
        devices = DeviceTokens(kek, clock, settings.throttle_trust_ttl)
        self.factors = Factors(db, clock, self.throttle, revoking, kek, issuer=settings.issuer)
        self.passkeys = Passkeys(db, settings, self.factors, self.throttle, sessions,
                                 SignedCeremonies(kek, clock, CEREMONY_TTL))
        self.second_factor = SecondFactorSignIn(storage, sessions, self.factors, self.passkeys)
        self.sign_in = SignIn(storage, clock, self.passwords, self.throttle, devices, sessions,
                              self.factors)
        self.federation = Federation(
            db, providers.load(settings.providers_file),
            ProviderClient(ProviderHttp(settings.provider_timeout), clock,
                                     settings.clock_leeway),
            sessions, self.factors, signup=settings.signup,
            redirect_origins=settings.redirect_origins,
            flows=SealedFlows(kek, clock, settings.federation_flow_ttl),
            passkeys_sign_in=settings.passkey_sign_in)
        self.refresh = Refresh(storage, self.throttle, revoking, sessions, refresh_tokens,
                               grace=settings.refresh_reuse_interval,
                               idle_ttl=settings.session_idle_ttl,
                               audit_success=settings.audit_refreshes)
        self.sign_out = SignOut(db, revoking, self.validator, refresh_tokens)
        self.accounts = Accounts(db, clock, self.passwords, revoking)
        self.user_import = UserImport(db, kek)
        self.retention = Retention(db, self.throttle, audit_retention=settings.audit_retention,
                                   session_retention=window,
                                   observe=observe_pruning)
        self.messages = Messages(kek, settings.code_ttl, settings.link_base_url)
        self.codes = codes = Codes(db, revoking, self.throttle, code_policy(settings), kek)
        sends = Sends(db, self.throttle)
        self.self_service = SelfService(
            SignUp(db, settings.signup, self.passwords, sends, codes, self.messages,
                   self.sign_in),
            Verification(db, sends, codes, self.messages),
            ChangePassword(db, self.passwords, self.throttle, revoking, self.messages),
            PasswordReset(db, self.passwords, sends, codes, self.messages))
        self.delivery = Delivery(db, self.messages, delivery_channels(settings, clock),
                                 retry_base=settings.outbox_retry_base,
                                 retry_max=settings.outbox_retry_max,
                                 max_attempts=settings.outbox_max_attempts, clock=clock,
                                 lease=settings.outbox_lease,
                                 send_timeout=settings.outbox_send_timeout)
        self.messages.on_written(self.delivery.wake)

    async def calibrate_dummy_hash(self) -> None:
        """Unknown users cost what most stored hashes cost (see ``Passwords.calibrate``)."""
        async with self.db.connection() as conn:
            typical = await user_rows.typical_password_hash(conn)
        self.passwords.calibrate(typical)  # no hashing: cheap enough for the event loop

    async def count_foreign_hashes(self) -> None:
        """Set authsvc_users_foreign_hash (read from the users_foreign_hash index)."""
        observe_foreign_hashes(await self.user_import.foreign_count())

    async def housekeep(self) -> None:
        """Pick up rotated keys, drop expired cache entries, prune what can no longer
        matter, now and then; aim the dummy hash at once (in the background, so the
        scan of the users table does not delay start-up) and then every hour."""
        interval = self.settings.housekeeping_interval
        rounds, calibration_rounds = 0, max(1, round(CALIBRATION_INTERVAL / interval))
        while True:
            raise_if_cancelled()
            if rounds % calibration_rounds == 0:
                await self._housekeeping_task("calibration", self.calibrate_dummy_hash)
            await asyncio.sleep(interval)
            rounds += 1
            self.validator.evict_expired()
            for task, run in (("keys", self.keystore.load), ("pruning", self.retention.prune),
                              ("outbox", self.delivery.prune),
                              ("codes", self.codes.forget_expired),
                              ("federation", self.federation.forget_expired),
                              ("foreign hashes", self.count_foreign_hashes)):
                await self._housekeeping_task(task, run)

    async def _housekeeping_task(self, task: str, run: Callable[[], Awaitable[object]],
                                 ) -> None:
        """One housekeeping task; a failure is logged with its SQLSTATE and retried
        at the next pass, and never stops the others."""
        try:
            await run()
        except Exception as exc:
            log.warning("housekeeping task failed; trying again later", extra={"fields": {
                "task": task, "error": type(exc).__name__,
                "sqlstate": getattr(exc, "sqlstate", None)}})

    async def report_gauges(self, update: Callable[[int, int, int, int, float], None],
                            ) -> None:
        """Hand ``update`` the gauges' values every few seconds."""
        while True:
            pool = self.db.pool
            update(len(self.revocations), pool.get_size(), pool.get_idle_size(),
                   self.passwords.waiting, self.listener.clock_offset)
            await asyncio.sleep(GAUGE_INTERVAL)


def sql_storage(db: Database) -> Storage:
    """The hot flows' rows in PostgreSQL: each store module is the SQL implementation of
    the domain's protocol for it (``domain.sessions.storage``), checked here by mypy."""
    return Storage(db=db, users=user_rows, sessions=session_rows, throttles=throttle_rows,
                   challenges=factor_rows, events=event_rows)


def throttle_policy(settings: Settings) -> ThrottlePolicy:
    def tarpit(free: int) -> Tarpit:
        return Tarpit(free=free, base=settings.throttle_base_delay,
                      cap=settings.throttle_max_delay, window=settings.throttle_window)

    return ThrottlePolicy(identifier=tarpit(settings.throttle_identifier_free),
                          address=tarpit(settings.throttle_address_free),
                          pair=tarpit(settings.throttle_pair_free),
                          refresh_address=tarpit(settings.throttle_refresh_free),
                          trust_ttl=settings.throttle_trust_ttl,
                          ipv6_prefix=settings.throttle_ipv6_prefix)


def code_policy(settings: Settings) -> CodePolicy:
    """Code tries count like sign-in attempts: the same tarpits per identifier, per
    address and per pair."""
    policy = throttle_policy(settings)
    return CodePolicy(format=settings.code_format, ttl=settings.code_ttl,
                      tries=policy.identifier, tries_by_address=policy.address,
                      tries_by_pair=policy.pair)


def delivery_channels(settings: Settings, clock: Clock) -> dict[str, Channel]:
    smtp = None
    if settings.smtp_url is not None and settings.smtp_from:
        smtp = SmtpChannel(settings.smtp_url.reveal(), settings.smtp_from,
                           settings.outbox_send_timeout)
    webhook = None
    if settings.webhook_url is not None and settings.webhook_secret is not None:
        webhook = WebhookChannel(settings.webhook_url, settings.webhook_secret.reveal(), clock)
    return channels(settings.email_channel, smtp, webhook)


@contextlib.asynccontextmanager
async def running_app(settings: Settings, database_url: str, clock: Clock = system_clock,
                      *, listen_for_revocations: bool = True,
                      connection_init: Callable[[Connection], Awaitable[None]] | None = None,
                      ) -> AsyncIterator[App]:
    """An App with its pool open, key ring loaded and listener following NOTIFY;
    ``connection_init`` runs on each new pooled connection (after the tracing hook
    that makes a span of each statement, when tracing is on)."""
    tracing_on = tracing.enabled()

    async def init(conn: Connection) -> None:
        if tracing_on:
            await query_spans(conn)
        if connection_init is not None:
            await connection_init(conn)

    pool = await create_pool(database_url, settings.db_pool_size, settings.db_timeout,
                             init=init if tracing_on or connection_init else None,
                             listener=listen_for_revocations, budget=ConnectionBudget(
                                 settings.workers, settings.db_pool_size))
    db = Database(pool, settings.db_timeout)
    app = App(settings, database_url, db, clock)
    tasks: list[asyncio.Task[None]] = []
    try:
        await app.keystore.ensure_signing_key()
        if listen_for_revocations:
            await app.listener.start()
            tasks = [asyncio.create_task(app.housekeep(), name="housekeeping"),
                     asyncio.create_task(app.report_gauges(update_gauges), name="gauges"),
                     asyncio.create_task(app.delivery.run(), name="outbox")]
        yield app
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            _done, stuck = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
            for task in stuck:  # never reached by design (see core.tasks); never hang on it
                log.error("background task did not stop", extra={"fields": {
                    "task": task.get_name()}})
        await app.listener.stop()
        await db.close()
        app.passwords.close()
