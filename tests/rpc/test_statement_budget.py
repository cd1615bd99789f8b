"""What each RPC costs PostgreSQL, counted on the real connections: SignIn is at most two
transactions (reserve the attempt and read the user, in one statement; then re-check the
user and write the outcome; an imported user's first one adds the upgrade's UPDATE), Refresh exactly
one statement, Validate none, and a connection goes back to the pool without a reset
query."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import asyncpg
import bcrypt
import grpc
import pytest

from authsvc.domain.accounts.user_import import UserImport
from authsvc.runtime.app import running_app
from authsvc.runtime.server import running_server
from authsvc.store.database import Database
from authsvc.v1 import auth_pb2, auth_pb2_grpc

from ..helpers import PASSWORD, sign_in
from ..providers.config import oidc_section, write_providers
from ..providers.http import query_of
from ..providers.rogue import RogueProvider, RogueUser, running_rogue_provider


@dataclass
class Ledger:
    """Every statement the pool's connections ran, in order."""

    statements: list[str] = field(default_factory=list)

    def log(self, record: asyncpg.connection.LoggedQuery) -> None:
        self.statements.append(" ".join(record.query.split()))

    async def attach(self, conn: asyncpg.Connection) -> None:
        conn.add_query_logger(self.log)

    def taken(self) -> list[str]:
        taken, self.statements = self.statements, []
        return taken


def transactions(statements: list[str]) -> int:
    """Explicit BEGIN…COMMIT blocks, plus each statement outside one (autocommit)."""
    count, inside = 0, False
    for statement in statements:
        keyword = statement.split()[0].upper().rstrip(";")
        if keyword == "BEGIN":
            count, inside = count + 1, True
        elif keyword in ("COMMIT", "ROLLBACK"):
            inside = False
        elif not inside:
            count += 1
    return count


@pytest.fixture
async def counted(settings, database_url, clock) -> AsyncIterator[
        tuple[Ledger, auth_pb2_grpc.AuthStub]]:
    """A server whose pool logs every statement; housekeeping and the listener (on
    their own connections anyway) are off so nothing else runs meanwhile."""
    ledger = Ledger()
    async with running_app(settings, database_url, clock, listen_for_revocations=False,
                           connection_init=ledger.attach) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await app.accounts.add("email", "alice@example.com", PASSWORD)
        app.revocations.load({})  # what the listener would have loaded
        ledger.taken()
        yield ledger, auth_pb2_grpc.AuthStub(channel)


@contextlib.asynccontextmanager
async def cost(ledger: Ledger) -> AsyncIterator[list[str]]:
    ledger.taken()
    statements: list[str] = []
    yield statements
    statements += ledger.taken()


async def test_sign_in_is_at_most_two_transactions(counted):
    """A successful SignIn: two transactions, the first of them one statement (no
    BEGIN), no reset query, nothing else."""
    ledger, stub = counted
    await sign_in(stub)  # statements prepared once per connection are not the budget
    async with cost(ledger) as statements:
        await sign_in(stub)

    assert transactions(statements) == 2, statements
    assert statements[1] == "BEGIN", statements
    assert not [s for s in statements if "RESET" in s.upper() or "UNLISTEN" in s.upper()]


async def test_refresh_is_one_statement(counted):
    """A rotation, a retry within the grace and a reuse are each one statement (so one
    transaction) that decides and writes."""
    ledger, stub = counted
    first = await sign_in(stub)
    request = auth_pb2.RefreshRequest(refresh_token=first.refresh_token)

    async with cost(ledger) as rotation:
        await stub.Refresh(request)
    async with cost(ledger) as retry:
        await stub.Refresh(request)

    assert (len(rotation), len(retry)) == (1, 1), (rotation, retry)
    assert "refresh_session" in rotation[0]


async def test_validate_asks_the_database_nothing(counted):
    """Validate with a current revocation set touches no connection."""
    ledger, stub = counted
    signed_in = await sign_in(stub)

    async with cost(ledger) as statements:
        for _ in range(10):
            await stub.Validate(auth_pb2.ValidateRequest(access_token=signed_in.access_token))

    assert statements == []


async def test_sign_out_is_one_transaction(counted):
    """Revoke by refresh token: one transaction (no lookup: the token names its session)."""
    ledger, stub = counted
    signed_in = await sign_in(stub)

    async with cost(ledger) as statements:
        await stub.Revoke(auth_pb2.RevokeRequest(token=signed_in.refresh_token))

    assert transactions(statements) == 1, statements


async def test_validate_asking_for_the_profile_reads_the_user_row_once(counted):
    """Validate with ``profile``: one statement, the user's row by its id; the same
    token without it: none."""
    ledger, stub = counted
    signed_in = await sign_in(stub)

    async with cost(ledger) as plain:
        await stub.Validate(auth_pb2.ValidateRequest(access_token=signed_in.access_token))
    async with cost(ledger) as asked:
        await stub.Validate(auth_pb2.ValidateRequest(access_token=signed_in.access_token,
                                                     profile=True))

    assert plain == []
    assert len(asked) == 1 and "FROM users WHERE id = $1" in asked[0], asked


async def test_an_upgrading_sign_in_costs_one_statement_more(counted, settings):
    """The first SignIn of an imported user: still two transactions, and exactly one
    statement more than a native user's (the conditional UPDATE of the upgrade, in the
    second transaction); the next SignIn costs what a native one does."""
    ledger, stub = counted
    await sign_in(stub)  # statements prepared once per connection are not the budget
    async with cost(ledger) as native:
        await sign_in(stub)
    made = bcrypt.hashpw(b"old password 1", bcrypt.gensalt(4)).decode()
    line = json.dumps({"external_id": "src:1", "email": "ada@example.com",
                       "password": {"scheme": "bcrypt", "hash": made}})
    pool = await asyncpg.create_pool(settings.database_url.reveal(), min_size=1, max_size=1)
    try:
        await UserImport(Database(pool, 5.0), settings.key_encryption_key.reveal()).run([line])
    finally:
        await pool.close()

    async with cost(ledger) as upgrading:
        await sign_in(stub, "ada@example.com", "old password 1")
    async with cost(ledger) as upgraded:
        await sign_in(stub, "ada@example.com", "old password 1")

    assert transactions(upgrading) == 2, upgrading
    assert [s for s in upgrading if s not in native] == [
        "UPDATE users SET password_hash = $4, updated_at = now() WHERE id = $1 AND"
        " credentials_version = $2 AND password_hash = $3 AND disabled_at IS NULL"]
    assert len(upgraded) == len(native), (native, upgraded)


class TestFederatedSignIn:
    """Signing in with another provider costs no argon2, no statement to start, and at
    most the statements of a password sign-in plus the identity lookup to finish; the
    provider's round trips are the rest."""

    @pytest.fixture
    def idp(self) -> Iterator[RogueProvider]:
        with running_rogue_provider() as provider:
            yield provider

    @pytest.fixture
    def settings(self, settings, tmp_path, idp, monkeypatch):
        path = write_providers(
            tmp_path / "providers.toml",
            oidc_section("idp", idp, secret_env="BUDGET_IDP_SECRET",
                         redirect_uris=["http://127.0.0.1/callback"]))
        monkeypatch.setenv("BUDGET_IDP_SECRET", idp.client_secret)
        return dataclasses.replace(settings, providers_file=path, signup="open")

    async def test_a_returning_identity_costs_a_password_sign_ins_statements_plus_one(
            self, counted, idp):
        ledger, stub = counted
        async with cost(ledger) as password:
            await sign_in(stub)
        idp.user = RogueUser("bob-sub", "bob@example.com", True)

        async def federated() -> list[str]:
            async with cost(ledger) as starting:
                started = await stub.StartProviderSignIn(
                    auth_pb2.StartProviderSignInRequest(provider="idp"))
            assert starting == []  # the flow is sealed in its state: no statement at all
            params = query_of(await asyncio.to_thread(idp.authorize,
                                                      started.authorization_url))
            async with cost(ledger) as statements:
                await stub.FinishProviderSignIn(auth_pb2.FinishProviderSignInRequest(
                    provider="idp", flow_id=started.flow_id, state=params["state"],
                    code=params["code"], iss=params["iss"]))
            return statements

        await federated()  # the first sign-in creates the user
        returning = await federated()

        def work(statements: list[str]) -> list[str]:
            return [s for s in statements if s.split()[0].upper() not in ("BEGIN", "COMMIT")]

        assert len(work(returning)) <= len(work(password)) + 1, (returning, password)
        assert transactions(returning) <= 2, returning
