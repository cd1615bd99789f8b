"""Client load whose every answer is recorded, for the tests that break the database
under it (``tests/system/test_outage.py``, ``tests/system/test_failover.py``) and then
hold what the clients were told against the rows.

Each simulated user runs a session's whole life (sign in, validate, refresh twice,
revoke) over and over; every call and its answer goes into a ``Ledger``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc

from authsvc.v1 import auth_pb2, auth_pb2_grpc

from .helpers import PASSWORD, parse

WRITES = ("signin", "refresh", "revoke")  # the kinds of call that write to the database


@dataclass
class Outcome:
    """What one client call got, and when (monotonic seconds)."""

    kind: str
    started: float
    finished: float
    code: grpc.StatusCode
    reason: str | None = None
    reply: Any = None
    session_id: str | None = None  # the session the call was about


@dataclass
class Ledger:
    """Every call the load made and what it was told, to compare with the rows
    afterwards."""

    outcomes: list[Outcome] = field(default_factory=list)

    async def call(self, kind: str, rpc: Callable[[], Awaitable[Any]],
                   session_id: str | None = None) -> Outcome:
        """Make the call ``rpc()``, record its answer as ``kind`` and return it."""
        started = time.monotonic()
        try:
            reply = await rpc()
            outcome = Outcome(kind, started, time.monotonic(), grpc.StatusCode.OK, reply=reply,
                              session_id=getattr(reply, "session_id", None) or session_id)
        except grpc.RpcError as error:
            failure = parse(error)
            outcome = Outcome(kind, started, time.monotonic(), failure.code, failure.reason,
                              session_id=session_id)
        self.outcomes.append(outcome)
        return outcome

    def ok(self, kind: str, since: float = 0.0) -> list[Outcome]:
        """The calls of ``kind`` started at ``since`` or later that were answered OK."""
        return [o for o in self.outcomes
                if o.kind == kind and o.code == grpc.StatusCode.OK and o.started >= since]

    def failed(self, kind: str) -> list[Outcome]:
        """The calls of ``kind`` that were refused, whatever the code."""
        return [o for o in self.outcomes if o.kind == kind and o.code != grpc.StatusCode.OK]

    def unavailable(self, since: float, kinds: Iterable[str] = WRITES) -> list[Outcome]:
        """The calls of ``kinds`` started at ``since`` or later answered UNAVAILABLE."""
        wanted = set(kinds)
        return [o for o in self.outcomes if o.kind in wanted and o.started >= since
                and o.code == grpc.StatusCode.UNAVAILABLE]


async def lifecycle(stub: auth_pb2_grpc.AuthStub, ledger: Ledger, email: str,
                    stop: asyncio.Event, *, deadline: float, pacing: float) -> None:
    """Sign in, validate, refresh twice, revoke; start over after any failure, until
    ``stop`` is set. Each call carries the gRPC ``deadline``; after a refused sign-in
    the user waits ``pacing`` seconds (the load's rate while no database answers, not
    a wait for anything), as a real client backs off."""
    while not stop.is_set():
        signed = await ledger.call("signin", lambda: stub.SignIn(
            auth_pb2.SignInRequest(email=email, password=PASSWORD), timeout=deadline))
        if signed.code != grpc.StatusCode.OK:
            await asyncio.sleep(pacing)
            continue
        refresh, session_id = signed.reply.refresh_token, signed.reply.session_id
        await ledger.call("validate", lambda t=signed.reply.access_token: stub.Validate(
            auth_pb2.ValidateRequest(access_token=t), timeout=deadline))
        for _ in range(2):
            rotated = await ledger.call("refresh", lambda r=refresh: stub.Refresh(
                auth_pb2.RefreshRequest(refresh_token=r), timeout=deadline), session_id)
            if rotated.code != grpc.StatusCode.OK:
                break
            refresh = rotated.reply.refresh_token
        else:
            await ledger.call("revoke", lambda r=refresh: stub.Revoke(
                auth_pb2.RevokeRequest(token=r), timeout=deadline), session_id)


@contextlib.asynccontextmanager
async def load(stub: auth_pb2_grpc.AuthStub, ledger: Ledger, users: int, *,
               deadline: float, pacing: float) -> AsyncIterator[None]:
    """While inside: ``users`` users (``user0@example.com`` …) each run ``lifecycle``;
    on exit they finish the call they are in and stop."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(lifecycle(stub, ledger, f"user{i}@example.com", stop,
                                           deadline=deadline, pacing=pacing))
             for i in range(users)]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)
