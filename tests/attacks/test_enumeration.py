"""Account enumeration through the self-service flows (issue 13): SignUp (verify
mode) and RequestPasswordReset answer byte-identically whether or not the
identifier has an account, and take the same time (medians within 1.5x, with
production argon2 parameters and mail really being delivered)."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator

import grpc
import pytest

from authsvc.config import Secret
from authsvc.runtime.app import running_app
from authsvc.runtime.server import running_server
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD
from ..receivers import Mailbox

ROUNDS = 20
OTHER_PASSWORD = "a different passphrase 17"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox().start()
    yield box
    box.stop()


async def _timed(times: list[float], answers: set[bytes],
                 call: Callable[[], Awaitable[object]]) -> None:
    started = time.perf_counter()
    answer = await call()
    times.append(time.perf_counter() - started)
    assert hasattr(answer, "SerializeToString")
    answers.add(answer.SerializeToString())


def _within(medians: dict[str, float]) -> None:
    ratio = medians["existing"] / medians["unknown"]
    print(f"medians {medians} ratio {ratio:.2f}")
    assert 1 / 1.5 < ratio < 1.5, medians


async def test_sign_up_and_reset_answer_alike_for_existing_and_unknown_identifiers(
        settings, database_url, clock, mailbox):
    """Same bytes, and medians within 1.5x of each other, for SignUp and for
    RequestPasswordReset of taken and of unknown addresses."""
    real = dataclasses.replace(settings, argon2_profile="owasp", hash_threads=1,
                               signup="verify", smtp_url=Secret(mailbox.url),
                               smtp_from="authsvc@example.com")
    async with running_app(real, database_url, clock) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = auth_pb2_grpc.AuthStub(channel)
        for i in range(ROUNDS + 1):
            await app.accounts.add("email", f"taken{i}@example.com", PASSWORD)
        await stub.SignUp(auth_pb2.SignUpRequest(email="warm@example.com", password=PASSWORD))
        sign_ups: dict[str, list[float]] = {"existing": [], "unknown": []}
        resets: dict[str, list[float]] = {"existing": [], "unknown": []}
        answers: dict[str, set[bytes]] = {"signup": set(), "reset": set()}

        # Interleaved, so drift in machine load hits both alike, and in alternating
        # order, so the mail each call leaves to send in the background slows either kind
        # of call next as often.
        for i in range(ROUNDS):
            first, second = (0, 1) if i % 2 == 0 else (1, 0)
            pairs = (("existing", f"taken{i}@example.com"), ("unknown", f"new{i}@example.com"))
            for name, email in (pairs[first], pairs[second]):
                await _timed(sign_ups[name], answers["signup"], lambda email=email: stub.SignUp(
                    auth_pb2.SignUpRequest(email=email, password=OTHER_PASSWORD)))
            pairs = (("existing", f"taken{i}@example.com"),
                     ("unknown", f"nobody{i}@example.com"))
            for name, email in (pairs[first], pairs[second]):
                await _timed(resets[name], answers["reset"],
                             lambda email=email: stub.RequestPasswordReset(
                                 auth_pb2.RequestPasswordResetRequest(email=email)))

    assert answers == {"signup": {b""}, "reset": {b""}}
    _within({name: statistics.median(values) for name, values in sign_ups.items()})
    _within({name: statistics.median(values) for name, values in resets.items()})
