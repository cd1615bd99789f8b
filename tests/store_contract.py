"""What the hot flows' storage must decide (``authsvc.domain.sessions.storage``), as one suite
of cases run against every implementation: the in-memory fakes of the unit tier
(``tests/unit/test_store_contract.py``) and PostgreSQL in the rpc tier
(``tests/rpc/test_store_contract.py``), in the manner of ory/hydra's
``jwk/manager_test_helpers.go``. A subclass supplies the ``backend`` fixture.

Time moves through ``backend.travel``: the fake's clock, or every stored time in
PostgreSQL moved back (its ``now()`` cannot be set). Waits are compared with
what the tarpit says, within the time a statement takes on a busy machine.
"""

from __future__ import annotations

from typing import Protocol

from authsvc.domain.sessions.storage import Storage
from authsvc.store.factors import Summary
from authsvc.store.sessions import Refreshed, RefreshOutcome, RefreshRefused
from authsvc.store.throttles import Tarpit

GRACE = 10.0
IDLE = 3600.0
TTL = 86400
SLACK = 5.0  # seconds a busy machine may take between a statement and the next
TARPIT = Tarpit(free=2, base=60.0, cap=600.0, window=900.0)


class Backend(Protocol):
    """One implementation of the storage, and the arranging other flows would do."""

    storage: Storage

    async def add_user(self, email: str, *, scopes: tuple[str, ...] = ()) -> str: ...

    async def change_password(self, user_id: str) -> None: ...

    async def disable(self, user_id: str) -> None: ...

    async def travel(self, seconds: float) -> None: ...

    async def reasons(self, kind: str) -> list[str | None]:
        """The reasons of the audit rows of ``kind``, oldest first."""

    async def revoked(self, session_id: str) -> bool: ...


async def _session(backend: Backend, user_id: str, *, ttl: int = TTL,
                   amr: tuple[str, ...] = ("pwd",)) -> str:
    async with backend.storage.db.transaction() as conn:
        return await backend.storage.sessions.create(
            conn, user_id=user_id, scopes=("read",), ttl=ttl, client_addr=None,
            user_agent=None, amr=amr)


async def _refresh(backend: Backend, session_id: str, presented: int, *,
                   throttle: str | None = None, idle: float = IDLE,
                   ) -> Refreshed | RefreshRefused:
    async with backend.storage.db.connection() as conn:
        return await backend.storage.sessions.refresh(
            conn, session_id, presented, grace=GRACE, idle=idle, throttle=throttle,
            audit_success=True, client_addr=None, user_agent=None)


async def _reserve(backend: Backend, *keys: str) -> tuple[float, int] | None:
    async with backend.storage.db.transaction() as conn:
        return await backend.storage.throttles.reserve(conn, list(keys),
                                                       [(k, TARPIT) for k in keys])


class StoreContract:
    """The cases; ``backend`` is each implementation's fixture."""

    # --- users -------------------------------------------------------------

    async def test_a_user_is_found_by_identifier(self, backend: Backend):
        """find answers the user named by the identifier, None for an unknown one."""
        user_id = await backend.add_user("alice@example.com", scopes=("read",))

        async with backend.storage.db.connection() as conn:
            found = await backend.storage.users.find(conn, "email", "alice@example.com")
            unknown = await backend.storage.users.find(conn, "email", "bob@example.com")

        assert found is not None and (found.id, found.scopes) == (user_id, ("read",))
        assert unknown is None

    async def test_still_signing_in_holds_while_the_credentials_do(self, backend: Backend):
        """The credentials read are still the user's: their scopes."""
        user_id = await backend.add_user("alice@example.com", scopes=("read",))

        async with backend.storage.db.transaction() as conn:
            user = await backend.storage.users.get(conn, user_id)
            assert user is not None
            scopes = await backend.storage.users.still_signing_in(
                conn, user_id, user.credentials_version)

        assert scopes == ("read",)

    async def test_still_signing_in_ends_with_a_password_change(self, backend: Backend):
        """A password changed since the credentials were read: None."""
        user_id = await backend.add_user("alice@example.com")
        async with backend.storage.db.connection() as conn:
            user = await backend.storage.users.get(conn, user_id)
        assert user is not None

        await backend.change_password(user_id)
        async with backend.storage.db.transaction() as conn:
            scopes = await backend.storage.users.still_signing_in(
                conn, user_id, user.credentials_version)

        assert scopes is None

    async def test_still_signing_in_ends_with_disabling(self, backend: Backend):
        """A user disabled since the credentials were read: None."""
        user_id = await backend.add_user("alice@example.com")

        await backend.disable(user_id)
        async with backend.storage.db.transaction() as conn:
            scopes = await backend.storage.users.still_signing_in(conn, user_id, 0)

        assert scopes is None

    async def test_an_imported_hash_is_upgraded_once(self, backend: Backend):
        """upgrade_hash replaces the hash read, once: a racing second upgrade of the same
        hash changes nothing, and neither does the credentials' version."""
        user_id = await backend.add_user("alice@example.com")

        async with backend.storage.db.transaction() as conn:
            first = await backend.storage.users.upgrade_hash(conn, user_id, 0, "hash", "new")
        async with backend.storage.db.transaction() as conn:
            second = await backend.storage.users.upgrade_hash(conn, user_id, 0, "hash",
                                                              "newer")
            user = await backend.storage.users.get(conn, user_id)

        assert (first, second) == (True, False)
        assert user is not None and (user.password_hash, user.credentials_version) == (
            "new", 0)

    async def test_no_upgrade_after_a_password_change_or_disabling(self, backend: Backend):
        """A password changed, or the user disabled, since the hash was read: no upgrade."""
        changed = await backend.add_user("alice@example.com")
        disabled = await backend.add_user("bob@example.com")
        await backend.change_password(changed)
        await backend.disable(disabled)

        async with backend.storage.db.transaction() as conn:
            upgraded = [await backend.storage.users.upgrade_hash(conn, user_id, 0, "hash",
                                                                 "new")
                        for user_id in (changed, disabled)]
            users = [await backend.storage.users.get(conn, u) for u in (changed, disabled)]

        assert upgraded == [False, False]
        assert [u.password_hash for u in users if u is not None] == ["changed", "hash"]

    # --- sessions and refresh -----------------------------------------------

    async def test_a_new_session_rotates_from_counter_zero(self, backend: Backend):
        """The first refresh presents counter 0 and rotates to 1, carrying the user, the
        user's scopes and the session's amr."""
        user_id = await backend.add_user("alice@example.com", scopes=("read",))
        session_id = await _session(backend, user_id, amr=("pwd", "otp"))

        done = await _refresh(backend, session_id, 0)

        assert isinstance(done, Refreshed)
        assert (done.outcome, done.counter, done.user_id, done.scopes, done.amr) == (
            RefreshOutcome.ROTATED, 1, user_id, ("read",), ("pwd", "otp"))
        assert TTL - SLACK < done.expires_in <= TTL

    async def test_the_spent_token_within_the_grace_is_repeated(self, backend: Backend):
        """Counter 0 again within the grace interval: repeated, the same successor's
        counter, nothing revoked."""
        user_id = await backend.add_user("alice@example.com")
        session_id = await _session(backend, user_id)
        await _refresh(backend, session_id, 0)

        again = await _refresh(backend, session_id, 0)

        assert isinstance(again, Refreshed)
        assert (again.outcome, again.counter) == (RefreshOutcome.REPEATED, 1)
        assert not await backend.revoked(session_id)

    async def test_the_spent_token_after_the_grace_is_reuse(self, backend: Backend):
        """Counter 0 again after the grace interval: reuse; the session is revoked (its
        current token then finds it ended) and the reuse audited."""
        user_id = await backend.add_user("alice@example.com")
        session_id = await _session(backend, user_id)
        await _refresh(backend, session_id, 0)
        await backend.travel(GRACE + 1)

        reused = await _refresh(backend, session_id, 0)
        current = await _refresh(backend, session_id, 1)

        assert reused == RefreshRefused(RefreshOutcome.REUSED)
        assert current == RefreshRefused(RefreshOutcome.ENDED)
        assert await backend.revoked(session_id)
        assert await backend.reasons("refresh.reuse_detected") == [None]
        assert await backend.reasons("session.revoked") == ["refresh_token_reused"]

    async def test_an_older_token_is_reuse_even_within_the_grace(self, backend: Backend):
        """Only the immediately previous token gets the grace: counter 0 after two
        rotations is reuse at once."""
        user_id = await backend.add_user("alice@example.com")
        session_id = await _session(backend, user_id)
        await _refresh(backend, session_id, 0)
        await _refresh(backend, session_id, 1)

        reused = await _refresh(backend, session_id, 0)

        assert reused == RefreshRefused(RefreshOutcome.REUSED)

    async def test_a_counter_never_reached_is_unknown(self, backend: Backend):
        """A counter ahead of the session's, or a session that does not exist: unknown,
        and nothing is revoked."""
        user_id = await backend.add_user("alice@example.com")
        session_id = await _session(backend, user_id)

        ahead = await _refresh(backend, session_id, 5)
        nowhere = await _refresh(backend, "0190a5a4-0000-7000-8000-000000000000", 0)

        assert ahead == nowhere == RefreshRefused(RefreshOutcome.UNKNOWN)
        assert not await backend.revoked(session_id)

    async def test_a_session_past_its_lifetime_has_ended(self, backend: Backend):
        """After its absolute lifetime the session's current token is refused as ended,
        audited as such."""
        user_id = await backend.add_user("alice@example.com")
        session_id = await _session(backend, user_id, ttl=60)
        await backend.travel(61)

        done = await _refresh(backend, session_id, 0)

        assert done == RefreshRefused(RefreshOutcome.ENDED)
        assert await backend.reasons("refresh.failure") == ["session_ended"]

    async def test_a_session_idle_too_long_has_ended(self, backend: Backend):
        """Unrefreshed for longer than the idle lifetime: ended."""
        user_id = await backend.add_user("alice@example.com")
        session_id = await _session(backend, user_id)
        await backend.travel(31)

        done = await _refresh(backend, session_id, 0, idle=30)

        assert done == RefreshRefused(RefreshOutcome.ENDED)

    async def test_a_disabled_users_session_has_ended(self, backend: Backend):
        """The user was disabled: their session's token is refused as ended."""
        user_id = await backend.add_user("alice@example.com")
        session_id = await _session(backend, user_id)
        await backend.disable(user_id)

        done = await _refresh(backend, session_id, 0)

        assert done == RefreshRefused(RefreshOutcome.ENDED)

    async def test_a_blocking_throttle_refuses_the_refresh_first(self, backend: Backend):
        """The client's refresh key is blocked: throttled with the wait, and the token
        is not spent."""
        user_id = await backend.add_user("alice@example.com")
        session_id = await _session(backend, user_id)
        for _ in range(TARPIT.free + 1):
            async with backend.storage.db.connection() as conn:
                await backend.storage.throttles.record_failure(conn, "refresh-key", TARPIT)

        refused = await _refresh(backend, session_id, 0, throttle="refresh-key")
        rotated = await _refresh(backend, session_id, 0)

        assert isinstance(refused, RefreshRefused)
        assert refused.outcome is RefreshOutcome.THROTTLED
        assert TARPIT.base - SLACK < refused.retry_after <= TARPIT.base
        assert isinstance(rotated, Refreshed) and rotated.outcome is RefreshOutcome.ROTATED

    async def test_a_session_can_be_created_with_its_audit_row(self, backend: Backend):
        """create with ``recorded`` writes the session and one audit row of that kind
        and reason; without it, no audit row."""
        user_id = await backend.add_user("alice@example.com")
        async with backend.storage.db.transaction() as conn:
            await backend.storage.sessions.create(
                conn, user_id=user_id, scopes=(), ttl=TTL, client_addr=None,
                user_agent=None, recorded=("signin.success", "fed"))
            await backend.storage.sessions.create(
                conn, user_id=user_id, scopes=(), ttl=TTL, client_addr=None,
                user_agent=None)

        assert await backend.reasons("signin.success") == ["fed"]

    # --- throttles -----------------------------------------------------------

    async def test_reserve_takes_the_free_slots_then_refuses_with_the_wait(
            self, backend: Backend):
        """``free`` reservations, then one more that starts the block, then a refusal
        saying how long the block lasts and how many it refused."""
        taken = [await _reserve(backend, "k") for _ in range(TARPIT.free + 1)]

        refused = await _reserve(backend, "k")
        again = await _reserve(backend, "k")

        assert taken == [None] * (TARPIT.free + 1)
        assert refused is not None and again is not None
        assert TARPIT.base - SLACK < refused[0] <= TARPIT.base
        assert (refused[1], again[1]) == (1, 2)

    async def test_release_gives_the_slot_back(self, backend: Backend):
        """A released slot is not a failure: as many reservations pass again."""
        for _ in range(TARPIT.free):
            await _reserve(backend, "k")
            async with backend.storage.db.transaction() as conn:
                await backend.storage.throttles.release(conn, [("k", TARPIT)], [])

        taken = [await _reserve(backend, "k") for _ in range(TARPIT.free + 1)]

        assert taken == [None] * (TARPIT.free + 1)
        assert await _reserve(backend, "k") is not None

    async def test_a_cleared_key_starts_afresh(self, backend: Backend):
        """Clearing a blocked key ends its block."""
        for _ in range(TARPIT.free + 1):
            await _reserve(backend, "k")

        async with backend.storage.db.transaction() as conn:
            await backend.storage.throttles.release(conn, [], ["k"])
            blocked = await backend.storage.throttles.blocked_for(conn, ["k"])

        assert blocked is None
        assert await _reserve(backend, "k") is None

    async def test_the_block_ends_and_old_failures_are_forgotten(self, backend: Backend):
        """After the window the failures are forgotten: the free slots are back."""
        for _ in range(TARPIT.free + 1):
            await _reserve(backend, "k")
        await backend.travel(TARPIT.window + 1)

        taken = [await _reserve(backend, "k") for _ in range(TARPIT.free)]

        assert taken == [None] * TARPIT.free

    async def test_reserve_and_find_reads_the_user_only_with_the_slot(self, backend: Backend):
        """reserve_and_find takes the slot and reads the user in one go; once the key
        blocks, it refuses with the wait and reads no user, and an unknown identifier
        takes its slot too."""
        user_id = await backend.add_user("alice@example.com")

        async def attempt(email: str) -> tuple[tuple[float, int] | None, str | None]:
            async with backend.storage.db.connection() as conn:
                refused, user = await backend.storage.throttles.reserve_and_find(
                    conn, ["k"], [("k", TARPIT)], None, "email", email)
            return refused, user.id if user else None

        first = await attempt("alice@example.com")
        unknown = await attempt("bob@example.com")
        blocking = await attempt("alice@example.com")  # the failure over the free ones
        refused, user = await attempt("alice@example.com")

        assert (first, unknown, blocking) == ((None, user_id), (None, None), (None, user_id))
        assert user is None and refused is not None and 0 < refused[0] <= TARPIT.base

    async def test_reserve_and_find_skips_the_exempt_key_while_trusted(self, backend: Backend):
        """With an exempt (trust key, key): while the trust key is trusted, a blocking
        key does not refuse (it is still charged); without trust it does."""
        await backend.add_user("alice@example.com")
        for _ in range(TARPIT.free + 1):
            await _reserve(backend, "identifier")

        async def attempt() -> tuple[float, int] | None:
            async with backend.storage.db.connection() as conn:
                refused, _user = await backend.storage.throttles.reserve_and_find(
                    conn, ["identifier", "pair"], [("identifier", TARPIT), ("pair", TARPIT)],
                    ("trusted pair", "identifier"), "email", "alice@example.com")
            return refused

        untrusted = await attempt()
        async with backend.storage.db.connection() as conn:
            await backend.storage.throttles.trust(conn, "trusted pair", 60)
        trusted = await attempt()

        assert untrusted is not None and trusted is None

    async def test_release_can_trust_in_the_same_call(self, backend: Backend):
        """release with ``trusted`` gives the slot back and trusts the key for its ttl."""
        for _ in range(TARPIT.free):
            await _reserve(backend, "k")
        async with backend.storage.db.connection() as conn:
            await backend.storage.throttles.release(conn, [("k", TARPIT)], [], ("pair", 60))
            trusted = await backend.storage.throttles.is_trusted(conn, "pair")

        after = [await _reserve(backend, "k") for _ in range(2)]

        assert trusted
        assert after == [None, None]  # without the release the second would be refused

    async def test_trust_lasts_its_time(self, backend: Backend):
        """A trusted key is trusted for ``ttl`` seconds, not after."""
        async with backend.storage.db.connection() as conn:
            await backend.storage.throttles.trust(conn, "pair", 60)
            trusted = await backend.storage.throttles.is_trusted(conn, "pair")
            stranger = await backend.storage.throttles.is_trusted(conn, "other")
        await backend.travel(61)
        async with backend.storage.db.connection() as conn:
            later = await backend.storage.throttles.is_trusted(conn, "pair")

        assert (trusted, stranger, later) == (True, False, False)

    # --- sign-ins waiting for a second factor -----------------------------------

    async def test_a_challenge_lives_until_spent(self, backend: Backend):
        """A new challenge is locked with its user and credentials version; once spent,
        it is gone."""
        user_id = await backend.add_user("alice@example.com")
        challenges = backend.storage.challenges
        async with backend.storage.db.transaction() as conn:
            await challenges.create_challenge(conn, b"h" * 32, user_id, 0, 300)
            live = await challenges.lock_challenge(conn, b"h" * 32, 5)
            await challenges.spend_challenge(conn, b"h" * 32)
            spent = await challenges.lock_challenge(conn, b"h" * 32, 5)

        assert live is not None and (live.user_id, live.credentials_version) == (user_id, 0)
        assert spent is None

    async def test_a_challenge_dies_of_its_attempts_or_its_age(self, backend: Backend):
        """Out of attempts, or past its lifetime: no longer there."""
        user_id = await backend.add_user("alice@example.com")
        challenges = backend.storage.challenges
        async with backend.storage.db.transaction() as conn:
            await challenges.create_challenge(conn, b"a" * 32, user_id, 0, 300)
            await challenges.create_challenge(conn, b"b" * 32, user_id, 0, 300)
            for _ in range(2):
                await challenges.challenge_failed(conn, b"a" * 32)
            tired = await challenges.lock_challenge(conn, b"a" * 32, 2)
            fresh = await challenges.lock_challenge(conn, b"b" * 32, 2)
        await backend.travel(301)
        async with backend.storage.db.transaction() as conn:
            old = await challenges.lock_challenge(conn, b"b" * 32, 2)

        assert (tired, old) == (None, None)
        assert fresh is not None

    async def test_a_user_without_factors_has_an_empty_summary(self, backend: Backend):
        """No factor, no recovery codes, no passkeys."""
        user_id = await backend.add_user("alice@example.com")

        async with backend.storage.db.connection() as conn:
            found = await backend.storage.challenges.summary(conn, user_id)

        assert found == Summary(totp=False, recovery_codes=0, passkeys=0)

