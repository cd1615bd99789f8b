"""The attack review's findings, each reproduced as it was seen.

Every test states what an attacker did and the answer the service must give
now; each failed on the code before the fix.
"""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import jwt
import pytest
from argon2 import PasswordHasher

from authsvc.core.tokens import AccessClaims
from authsvc.domain.accounts.passwords import PROFILES
from authsvc.errors import TokenInvalid
from authsvc.runtime.app import App, running_app
from authsvc.runtime.server import running_server
from authsvc.v1 import auth_pb2, auth_pb2_grpc, user_admin_pb2, user_admin_pb2_grpc
from authsvc.verifiers import LocalVerifier

from ..conftest import watch_token
from ..helpers import PASSWORD, fails
from ..helpers import authsvc as cli

WRONG = "not the password"
EMAIL = "alice@example.com"


@pytest.fixture
async def service(settings, database_url, clock):
    """authsvc trusting 127.0.0.1 as a proxy, so each call names its client address
    in x-forwarded-for; the identifier counter governs (10 free failures)."""
    policy = dataclasses.replace(
        settings, throttle_identifier_free=10, throttle_address_free=100,
        throttle_pair_free=100, throttle_base_delay=60, throttle_max_delay=900,
        trusted_proxies=("127.0.0.1/32",), hash_threads=2)
    async with running_app(policy, database_url, clock) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        user_id = await app.accounts.add("email", EMAIL, PASSWORD, ("authsvc.admin",))
        yield app, auth_pb2_grpc.AuthStub(channel), user_id, port


def attempt(stub, password, address="203.0.113.9", email=EMAIL, device_token=""):
    return stub.SignIn(auth_pb2.SignInRequest(email=email, password=password,
                                              device_token=device_token),
                       metadata=(("x-forwarded-for", address),))


async def outcome(call):
    try:
        await call
    except grpc.RpcError:
        return (await fails(call)).reason
    return "OK"


async def event_counts(app: App) -> dict[str, int]:
    async with app.db.connection() as conn:
        rows = await conn.fetch("SELECT kind, count(*) AS n FROM auth_events GROUP BY kind")
    return {r["kind"]: r["n"] for r in rows}


def count_hashes(app: App) -> list[int]:
    """Count every password verification the server runs from now on."""
    calls = [0]
    verify = app.passwords.verify

    async def counting(stored, password):
        calls[0] += 1
        return await verify(stored, password)

    app.passwords.verify = counting  # type: ignore[method-assign]
    return calls


# --- 1. a burst of guesses -------------------------------------------------------------


async def test_a_concurrent_burst_gets_only_the_free_budget_hashed(service):
    """40 concurrent wrong guesses for one account: 11 are hashed (10 free + the one
    that starts the block), the other 29 are RATE_LIMITED without a hash, and the
    refusals leave audit rows at the 1st, 2nd, 4th, 8th and 16th: a trail, not a flood."""
    app, stub, _user, _port = service
    hashes = count_hashes(app)

    answers = await asyncio.gather(*(outcome(attempt(stub, WRONG)) for _ in range(40)))

    assert (hashes[0], answers.count("INVALID_CREDENTIALS"),
            answers.count("RATE_LIMITED")) == (11, 11, 29)
    counts = await event_counts(app)
    assert (counts["signin.failure"], counts["signin.throttled"]) == (11, 5)


async def test_the_right_password_inside_a_burst_gets_no_extra_guesses_through(service):
    """With the right password (from another address) among 40 concurrent attempts,
    still exactly 11 wrong guesses are hashed; the right one is hashed only if it came
    before the budget was spent, and then it gives its slot back (a success is not a
    failure). (From the attacker's own address a success would trust that pair, which
    then has the pair's budget: the documented exemption.)"""
    app, stub, _user, _port = service
    hashes = count_hashes(app)
    calls = [attempt(stub, WRONG) for _ in range(39)] + [attempt(stub, PASSWORD,
                                                                 "198.51.100.20")]

    answers = await asyncio.gather(*(outcome(call) for call in calls))

    assert answers.count("INVALID_CREDENTIALS") == 11
    assert hashes[0] == 11 + answers.count("OK")
    assert answers.count("RATE_LIMITED") == 40 - hashes[0]


async def test_bursts_from_two_replicas_share_one_budget(service, settings, database_url,
                                                         clock):
    """The reservation is in PostgreSQL: a second replica's burst draws on the same
    budget, so two bursts at once still get 11 hashes between them."""
    app, stub, _user, _port = service
    policy = dataclasses.replace(settings, throttle_identifier_free=10,
                                 throttle_address_free=100, throttle_pair_free=100,
                                 throttle_base_delay=60, trusted_proxies=("127.0.0.1/32",))
    async with running_app(policy, database_url, clock) as other, \
            running_server(other, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        hashes_here, hashes_there = count_hashes(app), count_hashes(other)
        stub_there = auth_pb2_grpc.AuthStub(channel)
        calls = [attempt(s, WRONG) for _ in range(20) for s in (stub, stub_there)]

        answers = await asyncio.gather(*(outcome(call) for call in calls))

    assert hashes_here[0] + hashes_there[0] == 11
    assert answers.count("RATE_LIMITED") == 29


# --- 2. a sign-in in flight during a password change or disabling -----------------------


@pytest.mark.parametrize("change", ["set_password", "disable"])
async def test_a_sign_in_hashing_while_the_credentials_change_creates_no_session(
        service, change):
    """A sign-in that checked the old password while an administrator changed the
    password (or disabled the user) fails INVALID_CREDENTIALS and leaves no session."""
    app, stub, user_id, _port = service
    hashed, go_on = asyncio.Event(), asyncio.Event()
    verify = app.passwords.verify

    async def held(stored, password):
        verdict = await verify(stored, password)
        hashed.set()
        await go_on.wait()  # the barrier between the hash and the session insert
        return verdict

    app.passwords.verify = held  # type: ignore[method-assign]
    call = asyncio.ensure_future(outcome(attempt(stub, PASSWORD)))
    await hashed.wait()
    if change == "set_password":
        await app.accounts.set_password(user_id, "a brand new passphrase")
    else:
        await app.accounts.disable(user_id)
    go_on.set()

    assert await call == "INVALID_CREDENTIALS"
    async with app.db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM sessions") == 0
        assert await conn.fetchval(
            "SELECT reason FROM auth_events WHERE kind = 'signin.failure'") == \
            "credentials_changed"


async def test_a_session_created_just_before_a_password_change_is_revoked_by_it(service):
    """The other order: the sign-in's transaction commits first, and the change that
    waited for it revokes the session it created."""
    app, stub, user_id, _port = service
    signed_in = await attempt(stub, PASSWORD)

    await app.accounts.set_password(user_id, "a brand new passphrase")

    failure = await fails(stub.Refresh(auth_pb2.RefreshRequest(
        refresh_token=signed_in.refresh_token)))
    assert failure.reason == "REFRESH_TOKEN_INVALID"
    revoked = await fails(stub.Validate(auth_pb2.ValidateRequest(
        access_token=signed_in.access_token)))
    assert revoked.reason == "TOKEN_REVOKED"


# --- 3. the local verifier and a token living too long -------------------------------


async def test_the_local_verifier_refuses_a_ten_year_token_as_validate_does(service, clock):
    """A token signed with the service's own key but living ten years (a stolen key)
    is refused by Validate and by the LocalVerifier alike."""
    app, stub, user_id, port = service
    key = app.keystore.ring.signer(clock())
    now = int(clock())
    forged = jwt.encode(
        {"iss": "authsvc", "aud": "authsvc", "sub": user_id, "iat": now, "nbf": now,
         "exp": now + 10 * 365 * 86400, "jti": "j", "sid": "s", "scope": "authsvc.admin"},
        key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": "at+jwt"})

    token = await watch_token(app)
    async with LocalVerifier(f"127.0.0.1:{port}", clock=clock, access_token=lambda: token,
                             max_token_lifetime=app.settings.access_token_ttl) as verifier:
        with pytest.raises(TokenInvalid):
            await verifier.verify_async(forged)
        good = await attempt(stub, PASSWORD)
        claims = await verifier.verify_async(good.access_token)

    assert (await fails(stub.Validate(auth_pb2.ValidateRequest(access_token=forged)))
            ).reason == "TOKEN_INVALID"
    assert isinstance(claims, AccessClaims) and claims.user_id == user_id


# --- 5. lockout of the real user ------------------------------------------------------


async def test_guesses_from_elsewhere_do_not_lock_out_a_device_that_signed_in_before(
        service):
    """After 15 wrong guesses from four addresses, the owner's device (its device token)
    signs in from an address never seen; without the token the same call waits."""
    _app, stub, _user, _port = service
    device_token = (await attempt(stub, PASSWORD, "198.51.100.7")).device_token
    for i in range(15):
        await outcome(attempt(stub, WRONG, f"203.0.113.{i % 4}"))

    without = await fails(attempt(stub, PASSWORD, "192.0.2.44"))
    with_token = await attempt(stub, PASSWORD, "192.0.2.45", device_token=device_token)

    assert without.reason == "RATE_LIMITED"
    assert with_token.access_token and with_token.device_token != device_token


async def test_a_device_token_is_bound_to_its_identifier_and_has_its_own_counter(
        service):
    """Another account's device token exempts nothing, and a stolen device token buys
    only the device's own small budget of guesses."""
    app, stub, _user, _port = service
    await app.accounts.add("email", "bob@example.com", PASSWORD)
    bobs_token = (await attempt(stub, PASSWORD, email="bob@example.com")).device_token
    alices_token = (await attempt(stub, PASSWORD)).device_token
    for _ in range(11):
        await outcome(attempt(stub, WRONG, "203.0.113.1"))
    hashes = count_hashes(app)

    borrowed = await fails(attempt(stub, PASSWORD, "192.0.2.9", device_token=bobs_token))
    stolen = [await outcome(attempt(stub, WRONG, "192.0.2.10", device_token=alices_token))
              for _ in range(110)]

    assert borrowed.reason == "RATE_LIMITED"
    assert stolen.count("INVALID_CREDENTIALS") == 101  # the device counter: 100 free + 1
    assert stolen[101:] == ["RATE_LIMITED"] * 9
    assert hashes[0] == 101


async def test_a_forged_or_oversize_device_token_changes_nothing(service):
    """A device token that is not one the service issued is ignored; an oversize one
    is INVALID_ARGUMENT naming the field."""
    _app, stub, _user, _port = service
    for _ in range(11):
        await outcome(attempt(stub, WRONG, "203.0.113.1"))

    forged = await fails(attempt(stub, PASSWORD, "192.0.2.9",
                                 device_token="d1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.AAAA"))
    oversize = await fails(attempt(stub, PASSWORD, "192.0.2.9", device_token="d" * 257))

    assert forged.reason == "RATE_LIMITED"
    assert (oversize.code, oversize.fields) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                ["device_token"])


# --- 6. IPv6 ---------------------------------------------------------------------------


async def test_the_addresses_of_one_ipv6_64_share_one_address_counter(
        settings, database_url, clock):
    """Ten addresses of one /64 count as one client: after 3 free failures and the one
    that starts the block, every other address of that /64 is refused without a hash,
    while a neighbouring /64 is untouched."""
    policy = dataclasses.replace(
        settings, throttle_identifier_free=1000, throttle_address_free=3,
        throttle_pair_free=1000, throttle_base_delay=60, trusted_proxies=("127.0.0.1/32",))
    async with running_app(policy, database_url, clock) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = auth_pb2_grpc.AuthStub(channel)
        await app.accounts.add("email", EMAIL, PASSWORD)
        hashes = count_hashes(app)

        same_64 = [await outcome(attempt(stub, WRONG, f"2001:db8:0:1::{i:x}"))
                   for i in range(1, 11)]
        neighbour = await outcome(attempt(stub, WRONG, "2001:db8:0:2::1"))

    assert same_64 == ["INVALID_CREDENTIALS"] * 4 + ["RATE_LIMITED"] * 6
    assert neighbour == "INVALID_CREDENTIALS"
    assert hashes[0] == 5


# --- 8. withdrawn scopes -----------------------------------------------------------------


async def test_a_withdrawn_scope_is_gone_from_the_next_refreshed_token(service):
    """Removing a scope revokes nothing, but the session's next access token lacks it."""
    app, stub, user_id, _port = service
    signed_in = await attempt(stub, PASSWORD)
    before = await stub.Validate(auth_pb2.ValidateRequest(access_token=signed_in.access_token))

    _, scopes = await app.accounts.change_scopes(user_id, remove=("authsvc.admin",))
    refreshed = await stub.Refresh(auth_pb2.RefreshRequest(
        refresh_token=signed_in.refresh_token))
    after = await stub.Validate(auth_pb2.ValidateRequest(access_token=refreshed.access_token))
    still = await stub.Validate(auth_pb2.ValidateRequest(access_token=signed_in.access_token))

    assert list(before.scopes) == ["authsvc.admin"]
    assert scopes == () and list(after.scopes) == []
    assert still.session_id == signed_in.session_id  # nothing revoked


async def test_user_admin_set_scopes_grants_and_withdraws(service):
    """UserAdmin SetScopes (scope authsvc.admin) answers the scopes now held."""
    _app, stub, user_id, port = service
    admin = await attempt(stub, PASSWORD)
    bearer = (("authorization", f"Bearer {admin.access_token}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        users = user_admin_pb2_grpc.UserAdminStub(channel)

        granted = await users.SetScopes(user_admin_pb2.SetScopesRequest(
            email=EMAIL, add=["billing", "reports"], remove=["authsvc.admin"]), metadata=bearer)
        bad = await fails(users.SetScopes(user_admin_pb2.SetScopesRequest(
            user_id=user_id, add=["two words"]), metadata=bearer))

    assert (granted.user_id, list(granted.scopes)) == (user_id, ["billing", "reports"])
    assert (bad.code, bad.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["scope"])


def test_the_cli_grants_and_withdraws_scopes(database_url):
    """`authsvc users scopes --add/--remove` prints the user id and the scopes held now;
    without either flag it is a usage error naming the field."""
    added = cli(database_url, "users", "add", "--email", "carol@example.com",
                "--password-stdin", "--scope", "reports", stdin=PASSWORD)
    user_id = added.stdout.strip()

    changed = cli(database_url, "users", "scopes", "--email", "carol@example.com",
                  "--add", "billing", "--add", "audit", "--remove", "reports")
    nothing = cli(database_url, "users", "scopes", "--id", user_id)

    assert (changed.returncode, changed.stdout) == (0, f"{user_id} billing audit\n")
    assert nothing.returncode == 2
    assert nothing.stderr == "authsvc: error: scope: give --add or --remove (repeatable)\n"


# --- 7. timing after a profile change --------------------------------------------------


async def test_unknown_users_cost_what_most_stored_hashes_cost(service):
    """When most stored hashes have other argon2 parameters than the configured
    profile (a profile change), the dummy hash for unknown users takes theirs, so
    a wrong password costs the same for existing and unknown accounts."""
    app, stub, _user, _port = service
    old = PasswordHasher.from_parameters(PROFILES["owasp"])
    async with app.db.connection() as conn:
        for i in range(3):
            await conn.execute(
                "INSERT INTO users (id, email, password_hash, created_at, updated_at)"
                " VALUES (gen_random_uuid(), $1, $2, now(), now())",
                f"old{i}@example.com", old.hash(PASSWORD))
    configured = app.passwords.dummy_parameters

    await app.calibrate_dummy_hash()

    assert configured == PROFILES["test-only-cheapest"]
    assert app.passwords.dummy_parameters == PROFILES["owasp"]
    unknown = await fails(attempt(stub, PASSWORD, email="nobody@example.com"))
    assert unknown.reason == "INVALID_CREDENTIALS"


# --- weak passwords ------------------------------------------------------------------------


@pytest.mark.parametrize(("password", "why"), [
    ("password", "is too common; choose a longer or less usual one"),
    ("12345678", "is too common; choose a longer or less usual one"),
    ("PassWord1", "is too common; choose a longer or less usual one"),
    ("dora-explorer-2026", "must not contain the account's identifier"),
])
async def test_common_passwords_and_the_identifier_itself_are_refused(service, password, why):
    """New passwords are checked against a list of breached ones and against the
    account's identifiers: INVALID_ARGUMENT naming the field, nothing created."""
    app, _stub, user_id, port = service
    admin = await attempt(_stub, PASSWORD)
    bearer = (("authorization", f"Bearer {admin.access_token}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        users = user_admin_pb2_grpc.UserAdminStub(channel)
        created = await fails(users.CreateUser(user_admin_pb2.CreateUserRequest(
            username="dora-explorer", password=password), metadata=bearer))
        changed = await fails(users.SetPassword(user_admin_pb2.SetPasswordRequest(
            user_id=user_id, password=password.replace("dora-explorer", "alice")),
            metadata=bearer))

    assert (created.code, created.fields, created.message) == (
        grpc.StatusCode.INVALID_ARGUMENT, ["password"], f"password: {why}")
    assert (changed.code, changed.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["password"])
    async with app.db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM users") == 1


# --- the client's user agent through the gateway -------------------------------------------


@pytest.mark.parametrize(("trusted", "expected"), [
    (("127.0.0.1/32",), "Mozilla/5.0 (the browser)"), ((), "grpc-python-the-gateway")])
async def test_the_forwarded_user_agent_counts_only_from_a_trusted_proxy(
        settings, database_url, clock, trusted, expected):
    """Audit rows carry the client's user agent the gateway forwards, and only when
    the gateway is a trusted proxy; from anyone else the header is ignored."""
    proxied = dataclasses.replace(settings, trusted_proxies=trusted)
    async with running_app(proxied, database_url, clock) as app, \
            running_server(app, "127.0.0.1:0") as (_server, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[
                ("grpc.primary_user_agent", "grpc-python-the-gateway")]) as channel:
        await app.accounts.add("email", EMAIL, PASSWORD)
        await auth_pb2_grpc.AuthStub(channel).SignIn(
            auth_pb2.SignInRequest(email=EMAIL, password=PASSWORD),
            metadata=(("x-forwarded-user-agent", "Mozilla/5.0 (the browser)"),))
        async with app.db.connection() as conn:
            agent = await conn.fetchval(
                "SELECT user_agent FROM auth_events WHERE kind = 'signin.success'")

    assert agent.startswith(expected)
