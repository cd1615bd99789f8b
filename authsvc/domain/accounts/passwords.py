"""Password hashing with argon2id, off the event loop, in a bounded pool.

argon2-cffi releases the GIL while hashing, so a thread pool sized to the
cores uses every core; a semaphore bounds how many hashes wait, so a burst
of sign-ins queues instead of allocating 19 MiB per waiting request.

The hashing threads run at a lower scheduling priority (nice +10, Linux
only: nice is per thread there) than the event loop, so a burst of sign-ins
uses the idle CPU without starving the loop: Validate latency holds up under
SignIn load, while hashing still gets every core that nothing else wants.

While tracing is on, each hash is two spans: ``argon2.queue`` (the wait for
a slot and a thread) and ``argon2.hash`` (the hashing).

Profiles (``AUTHSVC_ARGON2_PROFILE``):

- ``owasp`` (default): argon2id, m=19 MiB, t=2, p=1, OWASP's minimum.
- ``rfc9106-low-memory``: argon2id, m=64 MiB, t=3, p=4.
- ``test-only-cheapest``: argon2-cffi's CHEAPEST. Only for tests.

A password hash imported from another system (``foreign_hashes``) is checked
on the same threads with its scheme's library, followed by one argon2 pass
(the dummy when it did not match, the upgrade's new hash when it did).

An unknown user is checked against a dummy hash so that the answer takes as
long as a known user's. The dummy is made with the parameters most stored
hashes have (``calibrate``, in the background at start-up, then hourly), not the configured
profile's: after a profile change, stored hashes keep their old cost until
their owners sign in (and are rehashed), and a dummy of the new cost would
tell existing accounts from unknown ones by time.

The dummy is not the hash of anything: it is an argon2 string with those
parameters, a random salt and a random digest (``unmatchable``). Checking a
password against it costs exactly what checking against a real hash of the
same parameters costs (argon2 hashes the password with the salt, then
compares), and no password matches it; making it costs nothing, so start-up
and each calibration skip a full hash (tens of milliseconds of CPU per worker,
and argon2's memory block).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import argon2
from argon2 import PasswordHasher, Type, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ... import tracing
from . import foreign_hashes

T = TypeVar("T")
HASHING_NICENESS = 10  # added to the hashing threads' nice value

PROFILES: dict[str, argon2.Parameters] = {
    "owasp": argon2.Parameters(
        type=Type.ID, version=19, salt_len=16, hash_len=32,
        time_cost=2, memory_cost=19 * 1024, parallelism=1),
    "rfc9106-low-memory": profiles.RFC_9106_LOW_MEMORY,
    "test-only-cheapest": profiles.CHEAPEST,
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a verification: did it match, and is a rehash due.

    ``upgrade``: the password matched an imported (foreign) hash; this is its
    argon2id hash, to replace the foreign one in the sign-in's own transaction."""

    ok: bool
    needs_rehash: bool = False
    upgrade: str | None = None


_TYPE_NAMES = {Type.ID: "argon2id", Type.I: "argon2i", Type.D: "argon2d"}


def unmatchable(parameters: argon2.Parameters) -> str:
    """An argon2 hash string with ``parameters``, a random salt and a random digest:
    verifying a password against it costs what verifying against a real hash with
    those parameters costs, and fails (as against any hash nobody knows the
    password of), without spending a hash to make it."""
    def b64(data: bytes) -> str:  # the PHC string format: standard alphabet, no padding
        return base64.b64encode(data).decode().rstrip("=")

    p = parameters
    return (f"${_TYPE_NAMES[p.type]}$v={p.version}$m={p.memory_cost},t={p.time_cost},"
            f"p={p.parallelism}${b64(secrets.token_bytes(p.salt_len))}"
            f"${b64(secrets.token_bytes(p.hash_len))}")


class Passwords:
    """Hashes and verifies passwords on a bounded pool of threads."""

    def __init__(self, profile: str, threads: int, max_waiting: int = 256) -> None:
        self._hasher = PasswordHasher.from_parameters(PROFILES[profile])
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2",
                                        initializer=_lower_priority)
        self._slots = asyncio.Semaphore(threads + max_waiting)
        # Verifying against this keeps an unknown user as slow as a known one.
        self._dummy = unmatchable(PROFILES[profile])
        # An imported hash unknown users are checked against too (``calibrate``).
        self._dummy_foreign: str | None = None
        self.waiting = 0

    @property
    def dummy_parameters(self) -> argon2.Parameters:
        return argon2.extract_parameters(self._dummy)

    def calibrate(self, typical_hash: str | None) -> None:
        """Make the dummy hash with the parameters of ``typical_hash`` (one of the
        most common stored hashes); unusable or None keeps the current dummy.

        While most users still carry an imported hash, ``typical_hash`` is one of
        those: an unknown user then costs what such a user costs (that hash's check,
        its result ignored, then the argon2 dummy), not less."""
        if typical_hash is None:
            return
        if foreign_hashes.is_foreign(typical_hash):
            self._dummy_foreign = typical_hash
            return
        self._dummy_foreign = None
        try:
            parameters = argon2.extract_parameters(typical_hash)
        except InvalidHashError:
            return
        if parameters != self.dummy_parameters:
            self._dummy = unmatchable(parameters)

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> Verdict:
        """Check ``password`` against ``stored_hash`` (``None``: the dummy hash,
        which never matches but costs the same)."""
        if stored_hash is not None and foreign_hashes.is_foreign(stored_hash):
            return await self._run(self._verify_foreign, stored_hash, password)
        if stored_hash is None and self._dummy_foreign is not None:
            return await self._run(self._imitate_foreign, self._dummy_foreign, password)
        target = self._dummy if stored_hash is None else stored_hash
        verdict = await self._run(self._verify, target, password)
        return Verdict(False) if stored_hash is None else verdict

    def _verify(self, stored_hash: str, password: str) -> Verdict:
        try:
            self._hasher.verify(stored_hash, password)
        except VerifyMismatchError:
            return Verdict(False)
        except (VerificationError, InvalidHashError):
            # A corrupt stored hash is a failed sign-in, never an INTERNAL;
            # spend the same time as a real verify so it leaks nothing.
            with contextlib.suppress(VerificationError, InvalidHashError):
                self._hasher.verify(self._dummy, password)
            return Verdict(False)
        return Verdict(True, self._hasher.check_needs_rehash(stored_hash))

    def _verify_foreign(self, stored_hash: str, password: str) -> Verdict:
        """An imported hash, checked with its scheme's library, then one argon2 pass:
        the new hash when it matched, the dummy's verification when not. Either way
        an imported user costs at least what an unknown one does (the dummy), so a
        fast foreign scheme never answers sooner than an unknown user."""
        if foreign_hashes.verify(stored_hash, password):
            return Verdict(True, upgrade=self._hasher.hash(password))
        with contextlib.suppress(VerificationError, InvalidHashError):
            self._hasher.verify(self._dummy, password)
        return Verdict(False)

    def _imitate_foreign(self, typical_hash: str, password: str) -> Verdict:
        """An unknown user, while most users carry an imported hash: the work of a
        wrong password for one of them (its check, whose result is never used, then
        the argon2 dummy)."""
        foreign_hashes.verify(typical_hash, password)
        with contextlib.suppress(VerificationError, InvalidHashError):
            self._hasher.verify(self._dummy, password)
        return Verdict(False)

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        if tracing.enabled():
            return await self._traced(fn, *args)
        async with self._slots:
            self.waiting += 1
            try:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._pool, fn, *args)
            finally:
                self.waiting -= 1

    async def _traced(self, fn: Callable[..., T], *args: str) -> T:
        """``_run``, recording ``argon2.queue`` (waiting for a slot and a thread) and
        ``argon2.hash`` (the hashing itself) as two spans."""
        times = [time.time_ns()]

        def timed(*args: str) -> T:
            times.append(time.time_ns())
            try:
                return fn(*args)
            finally:
                times.append(time.time_ns())

        try:
            async with self._slots:
                self.waiting += 1
                try:
                    loop = asyncio.get_running_loop()
                    return await loop.run_in_executor(self._pool, timed, *args)
                finally:
                    self.waiting -= 1
        finally:
            if len(times) > 1:
                tracing.record("argon2.queue", times[0], times[1])
            if len(times) > 2:
                tracing.record("argon2.hash", times[1], times[2],
                               {"argon2.memory_kib": self._hasher.memory_cost,
                                "argon2.time_cost": self._hasher.time_cost})

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _lower_priority() -> None:
    """Lower the calling thread's CPU priority (Linux: nice applies per thread)."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError):
        tid = threading.get_native_id()
        niceness = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, niceness + HASHING_NICENESS))
