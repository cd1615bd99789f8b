"""The throttle on messages sent to an address: sign-up, a resent verification
code, a password-reset request. Each reserves its slot (per identifier and per
client address) in a transaction of its own, before any hash is computed, so a
refused request costs nothing and sends nothing."""

from __future__ import annotations

from ...store.database import Database
from ...store.throttles import Tarpit
from ..accounts.identifiers import Identifier
from ..caller import Caller
from .throttle import Throttle

# Messages one identifier may be sent: 5 at once, then one per 30 s doubling to an
# hour; counters forget after an hour. Per address: AUTHSVC_THROTTLE_ADDRESS_FREE.
SENDS = Tarpit(free=5, base=30.0, cap=3600.0, window=3600.0)


class Sends:
    """The throttle on messages sent (sign-up, resend, password reset requests)."""

    def __init__(self, db: Database, throttle: Throttle) -> None:
        self._db = db
        self._throttle = throttle
        self._by_address = Tarpit(free=throttle.policy.address.free, base=SENDS.base,
                                  cap=SENDS.cap, window=SENDS.window)

    async def reserve(self, identifier: Identifier, caller: Caller) -> None:
        async with self._db.transaction() as conn:
            reservation = await self._throttle.reserve_attempt(
                conn, "send", identifier, caller.client_addr, identifier_tarpit=SENDS,
                address_tarpit=self._by_address)
        reservation.raise_if_refused()
