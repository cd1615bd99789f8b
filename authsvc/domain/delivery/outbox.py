"""Sending the outbox: a loop per receiver in every worker.

Each receiver (the SMTP server, the webhook) has a loop of its own that
claims its due messages with a lease (``store.outbox.claim``: FOR UPDATE SKIP
LOCKED, so workers and replicas share the work and never send one message at
once) and keeps up to a batch of sends going at once; so a receiver that
hangs or fails delays none of the others. Each send, from connecting to the
answer, is bounded by one deadline (``AUTHSVC_OUTBOX_SEND_TIMEOUT``), and a
stop cancels it at once. The outcome is recorded: sent (payload wiped), or
due again after a doubling delay (``AUTHSVC_OUTBOX_RETRY_BASE`` up to
``_MAX``, jittered), until ``AUTHSVC_OUTBOX_MAX_ATTEMPTS`` when it is kept as
failed for ``authsvc outbox`` to show. A mail server that is down delays
mail and loses none.

A receiver that fails ``BREAKER_THRESHOLD`` times in a row is left alone for
a while (its circuit breaker opens: nothing of its is claimed, so its messages
wait in the outbox without spending attempts), then one message probes it:
success closes the breaker, failure doubles the pause (from the retry base up
to the retry maximum). Time for the breaker is the injected clock's.

Leases are short (``AUTHSVC_OUTBOX_LEASE``, 30 s) and renewed every third of
a lease while a send goes on, by the database's clock: a long send in a live
worker keeps its claim, and a worker that dies leaves claims that run out
within one lease. A worker that stops gives back the claims of the sends it
cut short. A message sent but not recorded (a crash in between) goes again:
delivery is at least once, exactly once while nothing crashes; each message
carries a stable id (``Message-ID``, ``webhook-id``) so a receiver can drop a
repeat.

When a loop looks: at once when this worker wrote a message (``wake``, after
the writing transaction), when one of its sends ends, and when a message it
failed is due again (it knows the delay); else every ``IDLE_POLL`` seconds
(10 s), every ``POLL`` (1 s) while the receiver's breaker is open. The idle
look is what finds the rest: claims of a worker that died (after their lease),
messages written by another process that does not wake this one, retries
scheduled by a worker that stopped; they wait at most that much longer. An idle
worker so costs the database one claim per receiver every 10 s, not every
second.

Channels by kind of identifier: email goes by SMTP (``AUTHSVC_SMTP_URL``) or,
with ``AUTHSVC_EMAIL_CHANNEL=webhook``, to the webhook; phone numbers always
go to the webhook (``AUTHSVC_WEBHOOK_URL``: the organisation's notifier sends
the SMS). A message whose channel is not configured waits in the outbox. The
channels themselves (adapters) live in ``runtime.senders``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...clock import Clock, system_clock
from ...core.tasks import raise_if_cancelled
from ...store import outbox as outbox_rows
from ...store.database import Database
from ...store.outbox import Message
from .messages import Messages, Rendered

log = logging.getLogger(__name__)

BATCH = 8  # sends one receiver has under way at once, per worker (relays cap connections)
LEASE = 30.0  # seconds a claim lasts unless renewed (AUTHSVC_OUTBOX_LEASE)
SEND_TIMEOUT = 30.0  # seconds one send may take, all of it (AUTHSVC_OUTBOX_SEND_TIMEOUT)
BREAKER_THRESHOLD = 5  # failures in a row that make a receiver be left alone a while
POLL = 1.0  # seconds between looks at the outbox while a receiver's breaker is open
IDLE_POLL = 10.0  # seconds between looks when nothing wakes a loop (see Delivery._run_lane)
RELEASE_WAIT = 1.0  # seconds a stopping worker spends giving back its claims
SENT_KEPT = 7 * 86_400  # sent rows (payload wiped) are pruned after this


class Channel(Protocol):
    receiver: str  # where it sends, fit for logs (no credentials)

    async def send(self, message: Message, rendered: Rendered) -> None:
        """Deliver, or raise; cancellable at any point."""


class Breaker:
    """One receiver's circuit breaker (see the module's docstring)."""

    def __init__(self, threshold: int, pause: float, longest: float, clock: Clock) -> None:
        self._threshold = threshold
        self._first_pause = pause
        self._longest = longest
        self._clock = clock
        self._pause = pause
        self._failures = 0
        self._open_until: float | None = None
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

    def allowance(self, room: int) -> int:
        """How many messages may be claimed now, of ``room``: all while closed; none
        while open, then one (the probe) once the pause is over."""
        if self._open_until is None:
            return room
        if self._probing or self._clock() < self._open_until:
            return 0
        return min(room, 1)

    def probe_claimed(self) -> None:
        self._probing = True

    def succeeded(self) -> bool:
        """A send went through; True when that closed the breaker."""
        was_open = self._open_until is not None
        self._failures, self._open_until, self._probing = 0, None, False
        self._pause = self._first_pause
        return was_open

    def failed(self, probe: bool) -> float | None:
        """A send failed; the pause, when this opened the breaker (again)."""
        self._failures += 1
        if probe:
            self._probing = False
            self._pause = min(self._pause * 2, self._longest)
        elif self._open_until is not None or self._failures < self._threshold:
            return None
        self._open_until = self._clock() + self._pause
        return self._pause


@dataclass(eq=False)
class _Lane:
    """One receiver: the kinds of identifier it carries, its breaker, its sends."""

    channel: Channel
    kinds: list[str]
    breaker: Breaker
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sending: set[asyncio.Task[None]] = field(default_factory=set)


class Delivery:
    def __init__(self, db: Database, messages: Messages, channels: dict[str, Channel], *,
                 retry_base: float, retry_max: float, max_attempts: int,
                 clock: Clock = system_clock, batch: int = BATCH, lease: float = LEASE,
                 send_timeout: float = SEND_TIMEOUT,
                 breaker_threshold: int = BREAKER_THRESHOLD) -> None:
        self._db = db
        self._messages = messages
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._max_attempts = max_attempts
        self._batch = batch
        self._lease = lease
        self._send_timeout = send_timeout
        lanes: dict[int, _Lane] = {}
        for kind, channel in sorted(channels.items()):
            lane = lanes.setdefault(id(channel), _Lane(channel, [], Breaker(
                breaker_threshold, retry_base, retry_max, clock)))
            lane.kinds.append(kind)
        self._lanes = list(lanes.values())
        self._claims: dict[int, int] = {}  # id → attempts: the claims of sends under way

    def wake(self) -> None:
        """Look at the outbox now (a transaction just wrote to it)."""
        for lane in self._lanes:
            lane.wake.set()

    async def run(self) -> None:
        """Deliver until cancelled: a loop per receiver and one that renews leases;
        then give back the claims of the sends cut short."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._keep_leases(), name="outbox-leases")
                for lane in self._lanes:
                    group.create_task(self._run_lane(lane), name="outbox-" + lane.kinds[0])
        finally:
            await self._release()

    async def deliver_due(self) -> int:
        """One pass: each receiver claims up to a batch of its due messages and sends
        them at once; how many were claimed."""
        return sum(await asyncio.gather(*(self._pass(lane) for lane in self._lanes)))

    async def renew(self) -> list[int]:
        """Renew now the leases of the sends under way; the ids still ours."""
        claims = sorted(self._claims.items())
        if not claims:
            return []
        async with self._db.connection() as conn:
            return await outbox_rows.renew(conn, claims, self._lease)

    async def prune(self) -> int:
        async with self._db.connection() as conn:
            return await outbox_rows.prune_sent(conn, SENT_KEPT)

    async def _pass(self, lane: _Lane) -> int:
        claimed, probe = await self._claim(lane, self._batch)
        await asyncio.gather(*(self._deliver(lane, m, probe) for m in claimed))
        return len(claimed)

    async def _run_lane(self, lane: _Lane) -> None:
        try:
            while True:
                raise_if_cancelled()
                lane.wake.clear()
                room = self._batch - len(lane.sending)
                claimed: list[Message] = []
                if room > 0:
                    claimed, probe = await self._claim(lane, room)
                    for message in claimed:
                        task = asyncio.create_task(self._deliver(lane, message, probe))
                        lane.sending.add(task)
                        task.add_done_callback(lane.sending.discard)
                        task.add_done_callback(lambda _: lane.wake.set())
                if room == 0 or len(claimed) < room:
                    # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
                    # cancellation that arrives as the event is set, and the loop would
                    # then outlive its cancel at shutdown.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL if lane.breaker.is_open
                                                   else IDLE_POLL):
                            await lane.wake.wait()
        finally:
            for task in lane.sending:
                task.cancel()
            if lane.sending:
                await asyncio.wait(set(lane.sending))

    async def _claim(self, lane: _Lane, room: int) -> tuple[list[Message], bool]:
        """Up to ``room`` due messages of the lane, as its breaker allows; and whether
        they are a probe of an open breaker."""
        limit = lane.breaker.allowance(room)
        if limit == 0:
            return [], False
        try:
            async with self._db.transaction() as conn:
                claimed = await outbox_rows.claim(conn, lane.kinds, limit, self._lease,
                                                  list(self._claims))
        except Exception as exc:
            log.warning("outbox delivery pass failed; trying again shortly",
                        extra={"fields": {"error": type(exc).__name__}})
            return [], False
        for message in claimed:
            self._claims[message.id] = message.attempts
        probe = lane.breaker.is_open and bool(claimed)
        if probe:
            lane.breaker.probe_claimed()
        return claimed, probe

    async def _deliver(self, lane: _Lane, message: Message, probe: bool) -> None:
        fields = {"outbox_id": message.id, "kind": message.kind, "channel": message.channel,
                  "receiver": lane.channel.receiver, "attempts": message.attempts}
        try:
            rendered = self._messages.render(message)
            try:
                async with asyncio.timeout(self._send_timeout):
                    await lane.channel.send(message, rendered)
            except Exception:
                self._receiver_failed(lane, probe)
                raise
        except Exception as exc:
            error = _describe(exc)
            delay = min(self._retry_max, self._retry_base * 2 ** (message.attempts - 1))
            delay *= 0.75 + random.random() / 2  # noqa: S311 (jitter, not a secret)
            failed = await self._record(outbox_rows.retry_later, message.id, delay, error,
                                        self._max_attempts, message.attempts)
            if not failed:  # due again after ``delay`` by the database's clock: look then
                asyncio.get_running_loop().call_later(delay, lane.wake.set)
            log.warning("message not delivered; %s", "giving up" if failed else "will retry",
                        extra={"fields": {**fields, "error": error}})
        else:
            if lane.breaker.succeeded():
                log.info("receiver answering again",
                         extra={"fields": {"receiver": lane.channel.receiver}})
            await self._record(outbox_rows.sent, message.id)
            log.info("message delivered", extra={"fields": fields})
        self._claims.pop(message.id, None)

    def _receiver_failed(self, lane: _Lane, probe: bool) -> None:
        pause = lane.breaker.failed(probe)
        if pause is not None:
            log.warning("receiver failing; its messages wait in the outbox for a while",
                        extra={"fields": {"receiver": lane.channel.receiver,
                                          "seconds": round(pause, 3)}})

    async def _record(self, write: Callable[..., Awaitable[Any]], *args: object) -> bool:
        """Write an outcome; a database away leaves the lease to run out (the message
        then goes again)."""
        try:
            async with self._db.connection() as conn:
                return bool(await write(conn, *args))
        except Exception as exc:
            log.warning("outbox outcome not recorded; the message will go again",
                        extra={"fields": {"outbox_id": args[0], "error": type(exc).__name__}})
            return False

    async def _keep_leases(self) -> None:
        """Renew the leases of the sends under way every third of a lease."""
        while True:
            raise_if_cancelled()
            await asyncio.sleep(self._lease / 3)
            try:
                await self.renew()
            except Exception as exc:
                log.warning("outbox leases not renewed; trying again shortly",
                            extra={"fields": {"error": type(exc).__name__}})

    async def _release(self) -> None:
        """Give back, unsent and due at once, the claims of the sends cut short."""
        claims = sorted(self._claims.items())
        self._claims.clear()
        if not claims:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(RELEASE_WAIT), self._db.connection() as conn:
                await outbox_rows.release(conn, claims)


def _describe(exc: BaseException) -> str:
    """What went wrong, without secrets: the error's type and, for SMTP and HTTP,
    the server's status code."""
    code = getattr(exc, "code", None)
    return type(exc).__name__ + (f" {code}" if isinstance(code, int) else "")
