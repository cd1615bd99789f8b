"""Account enumeration: SignIn (unknown, wrong password, disabled) and the
self-service flows RequestPasswordReset, ResendVerification and SignUp (``verify``
mode, the one whose answer must not tell) do the same work whether or not the
identifier has an account, proved by counting, not timing: the same answer, the same
SQL statements in the same order, the same rows written to every table but the
account's own (its user row, its code row), the same argon2 hashes (with the same
parameters), HMACs and encryptions. (A timing comparison, which a busy machine can
upset, is a benchmark: ``python -m bench.enumeration``.)"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import argon2
import asyncpg
import grpc
import pytest

from authsvc.config import Secret
from authsvc.domain import keycrypto
from authsvc.domain.delivery.outbox import SENT_KEPT
from authsvc.runtime.app import App, running_app
from authsvc.runtime.server import running_server
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, fails
from ..receivers import Mailbox
from ..rpc.test_statement_budget import Ledger

OTHER_PASSWORD = "a different passphrase 17"
# Rows only an existing account can have: a new account's user row, and the code a
# message carries (its foreign key needs the user). Both are written, or not, by the
# one statement that both kinds of request run.
ACCOUNT_OWN = ("users", "account_codes")


@dataclass(frozen=True)
class Work:
    """What one request cost: its answer (the response's bytes, or the refusal), every
    statement the server's pool ran, the tuples written per table, the parameters of
    each argon2 hash or verification, and the HMACs and encryptions."""

    answer: object
    statements: tuple[str, ...]
    rows: dict[str, int]
    argon2: tuple[argon2.Parameters, ...]
    hmacs: int
    encryptions: int

    def apart_from(self, tables: tuple[str, ...]) -> Work:
        """The same, without the rows of ``tables``."""
        return dataclasses.replace(self, rows={t: n for t, n in self.rows.items()
                                               if t not in tables})


@dataclass
class Counted:
    app: App
    stub: auth_pb2_grpc.AuthStub
    ledger: Ledger
    probe: asyncpg.Connection  # outside the pool: its statements are not counted
    tables: list[str]
    argon2: list[argon2.Parameters]

    async def work(self, call: Callable[[], Awaitable[object]]) -> Work:
        """Run ``call`` and count what it cost."""
        next_xid = await self.probe.fetchval(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
        hashes, done = len(self.argon2), dataclasses.replace(keycrypto.WORK)
        self.ledger.taken()
        answer = await call()
        statements = tuple(self.ledger.taken())
        rows = {table: await self.probe.fetchval(
            f'SELECT count(*) FROM "{table}"'  # noqa: S608 (names from pg_tables)
            " WHERE xmin::text::bigint >= $1 % 4294967296", next_xid)
            for table in self.tables}
        if hasattr(answer, "SerializeToString"):
            answer = answer.SerializeToString()
        return Work(answer, statements, {table: n for table, n in rows.items() if n},
                    tuple(self.argon2[hashes:]), keycrypto.WORK.hmacs - done.hmacs,
                    keycrypto.WORK.encryptions - done.encryptions)


def count_argon2(app: App) -> list[argon2.Parameters]:
    """Record the parameters of every argon2 hash and verification the server runs
    from now on (as the sign-in burst tests count verifications); an unknown user's is
    the dummy hash's."""
    calls: list[argon2.Parameters] = []
    hash_, verify = app.passwords.hash, app.passwords.verify

    async def hashing(password):
        hashed = await hash_(password)
        calls.append(argon2.extract_parameters(hashed))
        return hashed

    async def verifying(stored, password):
        calls.append(app.passwords.dummy_parameters if stored is None
                     else argon2.extract_parameters(stored))
        return await verify(stored, password)

    app.passwords.hash = hashing  # type: ignore[method-assign]
    app.passwords.verify = verifying  # type: ignore[method-assign]
    return calls


@pytest.fixture
async def counted(settings, database_url, clock) -> AsyncIterator[Counted]:
    """A verify-mode server whose pool logs every statement, with no background task
    (listener, housekeeping, delivery) to run statements meanwhile. Accounts: alice
    (email, and the username alicia), pat (phone), carol (a username alone), dave
    (disabled), and three unverified sign-ups (two emails, one phone)."""
    ledger = Ledger()
    verify_mode = dataclasses.replace(settings, signup="verify")
    async with running_app(verify_mode, database_url, clock, listen_for_revocations=False,
                           connection_init=ledger.attach) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = auth_pb2_grpc.AuthStub(channel)
        for kind, value in (("email", "alice@example.com"), ("phone", "+14155550100"),
                            ("username", "carol")):
            await app.accounts.add(kind, value, PASSWORD)
        await app.accounts.disable(await app.accounts.add("email", "dave@example.com",
                                                          PASSWORD))
        for request in (auth_pb2.SignUpRequest(email="unverified@example.com"),
                        auth_pb2.SignUpRequest(email="unverified2@example.com"),
                        auth_pb2.SignUpRequest(phone="+14155550111")):
            request.password = PASSWORD
            await stub.SignUp(request)
        probe = await asyncpg.connect(database_url)
        try:
            await probe.execute("UPDATE users SET username = 'alicia'"
                                " WHERE email = 'alice@example.com'")
            tables = [r["tablename"] for r in await probe.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " ORDER BY tablename")]
            yield Counted(app, stub, ledger, probe, tables, count_argon2(app))
        finally:
            await probe.close()


def reset(**identifier: str) -> Callable[[auth_pb2_grpc.AuthStub], Awaitable[object]]:
    return lambda stub: stub.RequestPasswordReset(
        auth_pb2.RequestPasswordResetRequest(**identifier))


def resend(**identifier: str) -> Callable[[auth_pb2_grpc.AuthStub], Awaitable[object]]:
    return lambda stub: stub.ResendVerification(
        auth_pb2.ResendVerificationRequest(**identifier))


def sign_up(**identifier: str) -> Callable[[auth_pb2_grpc.AuthStub], Awaitable[object]]:
    return lambda stub: stub.SignUp(auth_pb2.SignUpRequest(**identifier,
                                                           password=OTHER_PASSWORD))


async def compare(counted: Counted, warm: Callable[[auth_pb2_grpc.AuthStub], Awaitable[object]],
                  known: Callable[[auth_pb2_grpc.AuthStub], Awaitable[object]],
                  unknown: Callable[[auth_pb2_grpc.AuthStub], Awaitable[object]],
                  ) -> tuple[Work, Work]:
    """The work of ``known`` and of ``unknown``, after ``warm`` (once, not counted) has
    filled the connections' statement caches."""
    await warm(counted.stub)
    account = await counted.work(lambda: known(counted.stub))
    nobody = await counted.work(lambda: unknown(counted.stub))
    return account, nobody


def sign_in(email: str, password: str) -> Callable[[auth_pb2_grpc.AuthStub],
                                                  Awaitable[object]]:
    return lambda stub: fails(stub.SignIn(auth_pb2.SignInRequest(email=email,
                                                                 password=password)))


@pytest.mark.parametrize("refused", [
    sign_in("nobody@example.com", PASSWORD), sign_in("dave@example.com", PASSWORD),
], ids=["unknown", "disabled"])
async def test_sign_in_costs_the_same_for_no_account_and_a_wrong_password(counted,
                                                                          refused):
    """SignIn of an unknown identifier, or of a disabled account with its right
    password, costs what a wrong password does: the same refusal, statements and rows,
    and one argon2 verification with the same parameters (the dummy hash has those of
    the stored hashes)."""
    wrong, other = await compare(counted, sign_in("warm@example.com", PASSWORD),
                                 sign_in("alice@example.com", "not the password"), refused)

    assert wrong == other
    assert len(other.argon2) == 1


@pytest.mark.parametrize(("known", "unknown"), [
    (reset(email="alice@example.com"), reset(email="nobody@example.com")),
    (reset(phone="+14155550100"), reset(phone="+14155550199")),
    (reset(username="alicia"), reset(username="nobody")),
], ids=["email", "phone", "username"])
async def test_reset_costs_the_same_for_an_account_and_for_no_account(counted, known,
                                                                      unknown):
    """RequestPasswordReset for an account and for an unknown identifier of the same
    kind: the same answer, statements, outbox and audit rows, HMAC and encryption; only
    the code row itself is the account's."""
    account, nobody = await compare(counted, reset(email="warm@example.com"), known,
                                    unknown)

    assert account.apart_from(ACCOUNT_OWN) == nobody.apart_from(ACCOUNT_OWN)
    assert (account.rows.get("account_codes"), nobody.rows.get("account_codes")) == (1, None)
    assert (nobody.answer, nobody.rows["outbox"], nobody.rows["auth_events"],
            nobody.argon2, nobody.hmacs, nobody.encryptions) == (b"", 1, 1, (), 1, 1)


@pytest.mark.parametrize(("known", "unknown"), [
    (reset(email="dave@example.com"), reset(email="nobody@example.com")),
    (reset(username="carol"), reset(username="nobody")),
], ids=["disabled", "no-address"])
async def test_reset_of_an_account_that_gets_no_code_costs_what_no_account_does(
        counted, known, unknown):
    """A disabled account, or one with no address to send to, gets no code, and its
    reset request costs exactly what an unknown identifier's does, row for row."""
    account, nobody = await compare(counted, reset(email="warm@example.com"), known,
                                    unknown)

    assert account == nobody
    assert "account_codes" not in nobody.rows


@pytest.mark.parametrize(("known", "unknown"), [
    (resend(email="unverified@example.com"), resend(email="nobody@example.com")),
    (resend(phone="+14155550111"), resend(phone="+14155550199")),
], ids=["email", "phone"])
async def test_resend_costs_the_same_for_an_unverified_account_and_for_no_account(
        counted, known, unknown):
    """ResendVerification for an unverified account (a new code) and for an unknown
    identifier: the same answer, statements, outbox and audit rows, HMAC and
    encryption; only the code row is the account's."""
    account, nobody = await compare(counted, resend(email="warm@example.com"), known,
                                    unknown)

    assert account.apart_from(ACCOUNT_OWN) == nobody.apart_from(ACCOUNT_OWN)
    assert (account.rows.get("account_codes"), nobody.rows.get("account_codes")) == (1, None)
    assert (nobody.answer, nobody.rows["outbox"], nobody.hmacs,
            nobody.encryptions) == (b"", 1, 1, 1)


async def test_resend_for_a_verified_account_costs_what_no_account_does(counted):
    """A verified account gets no new code: its resend costs exactly what an unknown
    identifier's does, row for row."""
    account, nobody = await compare(counted, resend(email="warm@example.com"),
                                    resend(email="alice@example.com"),
                                    resend(email="nobody@example.com"))

    assert account == nobody


@pytest.mark.parametrize(("taken", "new"), [
    (sign_up(email="alice@example.com"), sign_up(email="new@example.com")),
    (sign_up(email="unverified2@example.com"), sign_up(email="new@example.com")),
    (sign_up(phone="+14155550100"), sign_up(phone="+14155550122")),
], ids=["email", "unverified-email", "phone"])
async def test_sign_up_costs_the_same_for_a_taken_and_a_new_identifier(counted, taken, new):
    """SignUp in verify mode of a taken identifier and of a new one: the same answer,
    statements, outbox and audit rows, argon2 hash, HMAC and encryptions; only the
    new account's user row and code row differ, written by the same statement."""
    owner, newcomer = await compare(counted, sign_up(email="warm@example.com"), taken, new)

    assert owner.apart_from(ACCOUNT_OWN) == newcomer.apart_from(ACCOUNT_OWN)
    assert {t: newcomer.rows.get(t) for t in ACCOUNT_OWN} == {"users": 1, "account_codes": 1}
    assert {t: owner.rows.get(t) for t in ACCOUNT_OWN} == {"users": None,
                                                           "account_codes": None}
    assert (owner.answer, owner.rows["outbox"], owner.rows["auth_events"],
            len(owner.argon2), owner.hmacs, owner.encryptions) == (b"", 1, 1, 1, 1, 2)


async def test_a_request_for_no_account_sends_nothing_and_is_pruned_like_sent_mail(
        settings, database_url, clock):
    """The outbox row a request for an unknown identifier writes is settled when
    written: a delivery pass sends the account's code and nothing for the unknown
    identifiers, the row keeps no payload and no identifier, and it is pruned with the
    sent rows."""
    mailbox = Mailbox().start()
    mail = dataclasses.replace(settings, signup="verify", smtp_url=Secret(mailbox.url),
                               smtp_from="authsvc@example.com")
    try:
        async with running_app(mail, database_url, clock,
                               listen_for_revocations=False) as app, \
                running_server(app, "127.0.0.1:0") as (_server, port), \
                grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = auth_pb2_grpc.AuthStub(channel)
            await app.accounts.add("email", "alice@example.com", PASSWORD)
            for ask in (reset(email="nobody@example.com"), reset(username="nobody"),
                        resend(email="nobody@example.com"),
                        reset(email="alice@example.com")):
                await ask(stub)

            delivered = await app.delivery.deliver_due()
            async with app.db.connection() as conn:
                decoys = await conn.fetch(
                    "SELECT kind, recipient, payload, sent_at IS NOT NULL AS settled"
                    " FROM outbox WHERE kind = 'decoy'")
                await conn.execute("UPDATE outbox SET sent_at = sent_at - make_interval("
                                   "secs => $1::float8) WHERE kind = 'decoy'", SENT_KEPT + 1)
            pruned = await app.delivery.prune()
            async with app.db.connection() as conn:
                left = await conn.fetchval("SELECT count(*) FROM outbox WHERE kind = 'decoy'")
        received = mailbox.received()
    finally:
        mailbox.stop()

    assert delivered == 1
    assert [m["To"] for m in received] == ["alice@example.com"]
    assert [(d["recipient"], d["payload"], d["settled"]) for d in decoys] == [("", None, True)] * 3
    assert (pruned, left) == (3, 0)
