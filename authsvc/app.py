"""The parts of one authsvc worker, wired together, with a start/stop pair.

Start order: pool → key ring → revocation listener. Stop order is the
reverse: listener, then pool, then the hashing threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from .accounts import Accounts
from .clock import Clock, system_clock
from .config import Settings
from .keystore import KeyStore
from .passwords import Passwords
from .revocations import RevocationListener, RevocationSet
from .sessions import Sessions
from .store.database import Database, create_pool
from .store.throttles import Tarpit
from .throttle import Throttle, ThrottlePolicy
from .validation import Validator

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL = 30.0
GAUGE_INTERVAL = 2.0


class App:
    """Everything one worker needs to answer RPCs."""

    def __init__(self, settings: Settings, database_url: str, db: Database,
                 clock: Clock) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.keystore = KeyStore(db, settings, clock)
        window = settings.access_token_ttl + settings.clock_leeway
        self.revocations = RevocationSet(clock, window, settings.revocation_max_staleness)
        self.listener = RevocationListener(database_url, self.revocations, clock, window,
                                           settings.db_timeout)
        self.passwords = Passwords(settings.argon2_profile, settings.hash_threads)
        self.validator = Validator(db, settings, clock, self.keystore, self.revocations)
        assert settings.key_encryption_key is not None
        self.throttle = Throttle(db, clock, throttle_policy(settings),
                                 settings.key_encryption_key.reveal())
        self.sessions = Sessions(db, settings, clock, self.keystore, self.passwords,
                                 self.validator, self.revocations, self.throttle)
        self.accounts = Accounts(db, clock, self.passwords, self.revocations)
        self._tasks: list[asyncio.Task[None]] = []

    async def _report_gauges(self) -> None:
        """Refresh the metrics gauges every few seconds."""
        from .transport.observability import update_gauges

        while True:
            pool = self.db.pool
            update_gauges(len(self.revocations), pool.get_size(), pool.get_idle_size(),
                          self.passwords.waiting)
            await asyncio.sleep(GAUGE_INTERVAL)

    async def _housekeep(self) -> None:
        """Pick up rotated keys and drop expired cache entries, now and then."""
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)
            self.validator.evict_expired()
            try:
                await self.keystore.load()
                await self.throttle.forget_expired()
            except Exception as exc:
                log.warning("housekeeping failed (%s); trying again later", type(exc).__name__)


def throttle_policy(settings: Settings) -> ThrottlePolicy:
    def tarpit(free: int) -> Tarpit:
        return Tarpit(free=free, base=settings.throttle_base_delay,
                      cap=settings.throttle_max_delay, window=settings.throttle_window)

    return ThrottlePolicy(identifier=tarpit(settings.throttle_identifier_free),
                          address=tarpit(settings.throttle_address_free),
                          pair=tarpit(settings.throttle_pair_free),
                          refresh_address=tarpit(settings.throttle_refresh_free),
                          trust_ttl=settings.throttle_trust_ttl)


@contextlib.asynccontextmanager
async def running_app(settings: Settings, database_url: str, clock: Clock = system_clock,
                      *, listen_for_revocations: bool = True) -> AsyncIterator[App]:
    """An App with its pool open, key ring loaded and listener following NOTIFY."""
    pool = await create_pool(database_url, settings.db_pool_size, settings.db_timeout)
    db = Database(pool, settings.db_timeout)
    app = App(settings, database_url, db, clock)
    try:
        await app.keystore.ensure_signing_key()
        if listen_for_revocations:
            await app.listener.start()
            app._tasks = [asyncio.create_task(app._housekeep(), name="housekeeping"),
                          asyncio.create_task(app._report_gauges(), name="gauges")]
        yield app
    finally:
        for task in app._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await app.listener.stop()
        await db.close()
        app.passwords.close()
