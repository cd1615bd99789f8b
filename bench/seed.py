"""Tokens for the scenarios, made through the public API.

Sign-ins with the production argon2 profile cost ~50 ms of CPU each, so the
sessions whose refresh tokens the Refresh scenario spends are signed in on a
seeding server with the cheap test profile, on the same database and keys;
that server is stopped before anything is measured. Distinct access tokens
come from refreshing a few sessions many times (each Refresh returns a new
access token).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from authsvc.v1 import auth_pb2, auth_pb2_grpc

T = TypeVar("T")
CONCURRENCY = 16
RETRIES = 5  # a SignIn refused with UNAVAILABLE (e.g. a deadlock between two) is sent again
PASSWORD = "correct horse battery staple"  # noqa: S105 (the benchmark users')


@dataclass(frozen=True, slots=True)
class Session:
    access_token: str
    refresh_token: str


async def sign_in(target: str, email: str, password: str, count: int) -> list[Session]:
    async with grpc.aio.insecure_channel(target) as channel:
        auth = auth_pb2_grpc.AuthStub(channel)

        async def one() -> Session:
            request = auth_pb2.SignInRequest(email=email, password=password)
            for attempt in range(RETRIES):
                try:
                    reply = await auth.SignIn(request)
                    return Session(reply.access_token, reply.refresh_token)
                except grpc.aio.AioRpcError as exc:  # "retry shortly", as the service says
                    if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == RETRIES - 1:
                        raise
                    await asyncio.sleep(0.1 * 2**attempt)
            raise AssertionError("unreachable")

        return await _bounded([one] * count)


async def refresh_chains(target: str, sessions: list[Session], per_session: int,
                         ) -> tuple[list[str], list[Session]]:
    """Refresh each session ``per_session`` times in a row: all the access tokens
    issued, and each session's last token pair."""
    async with grpc.aio.insecure_channel(target) as channel:
        auth = auth_pb2_grpc.AuthStub(channel)

        async def chain(session: Session) -> tuple[list[str], Session]:
            issued = []
            for _ in range(per_session):
                reply = await auth.Refresh(
                    auth_pb2.RefreshRequest(refresh_token=session.refresh_token))
                session = Session(reply.access_token, reply.refresh_token)
                issued.append(reply.access_token)
            return issued, session

        results = await _bounded([functools.partial(chain, s) for s in sessions])
    return [t for issued, _ in results for t in issued], [last for _, last in results]


async def _bounded(jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
    slots = asyncio.Semaphore(CONCURRENCY)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with slots:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))
