"""UserAdmin: user administration over gRPC, behind authsvc's own interceptor."""

from __future__ import annotations

import asyncio
import base64

import grpc
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authsvc.v1 import auth_pb2, user_admin_pb2, user_admin_pb2_grpc

from ..helpers import PASSWORD, authsvc, bearer, fails, sign_in

NEW_PASSWORD = "another long passphrase"


@pytest.fixture
def admin(channel):
    return user_admin_pb2_grpc.UserAdminStub(channel)


@pytest.fixture
async def root(app, stub):
    """Bearer metadata of a user granted authsvc.admin."""
    await app.accounts.add("username", "root", PASSWORD, ("authsvc.admin",))
    signed_in = await stub.SignIn(auth_pb2.SignInRequest(username="root", password=PASSWORD))
    return bearer(signed_in.access_token)


async def test_the_cli_grants_scopes_that_sign_in_puts_in_the_token(database_url, settings,
                                                                   app, stub):
    """`users add --scope authsvc.admin` → SignIn issues scope "authsvc.admin"."""
    kek = base64.urlsafe_b64encode(settings.key_encryption_key.reveal()).decode()
    added = await asyncio.to_thread(authsvc, database_url, "users", "add", "--email",
                                    "ops@example.com", "--scope", "authsvc.admin",
                                    "--password-stdin", stdin=PASSWORD + "\n",
                                    env={"AUTHSVC_KEY_ENCRYPTION_KEY": kek})
    assert added.returncode == 0, added.stderr

    signed_in = await sign_in(stub, "ops@example.com")

    claims = jwt.decode(signed_in.access_token, options={"verify_signature": False})
    assert claims["scope"] == "authsvc.admin"


async def test_without_a_token_user_admin_is_unauthenticated(admin):
    """No bearer token: UNAUTHENTICATED, TOKEN_MISSING, bare challenge."""
    failure = await fails(admin.CreateUser(user_admin_pb2.CreateUserRequest(
        email="eve@example.com", password=PASSWORD)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    assert failure.challenge == 'Bearer realm="authsvc"'


async def test_without_the_admin_scope_user_admin_is_permission_denied(admin, stub, user):
    """A valid token without authsvc.admin: PERMISSION_DENIED, insufficient_scope."""
    signed_in = await sign_in(stub)

    failure = await fails(admin.ListSessions(user_admin_pb2.ListSessionsRequest(
        user_id=user), metadata=bearer(signed_in.access_token)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED,
                                              "INSUFFICIENT_SCOPE")
    assert failure.challenge == (
        'Bearer realm="authsvc", error="insufficient_scope", '
        'error_description="The access token lacks a required scope", scope="authsvc.admin"')


async def test_auth_and_health_need_no_token(channel, stub, user):
    """Every Auth method, health checking and reflection stay public."""
    health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    jwks = await stub.GetJwks(auth_pb2.GetJwksRequest())

    assert health.status in (health_pb2.HealthCheckResponse.SERVING,
                             health_pb2.HealthCheckResponse.NOT_SERVING)
    assert len(jwks.keys) == 1


async def test_create_user_then_sign_in_with_granted_scopes(admin, root, stub):
    """CreateUser makes a user who can sign in with the scopes granted."""
    created = await admin.CreateUser(user_admin_pb2.CreateUserRequest(
        email="Bob@Example.com", password=PASSWORD, scopes=["orders.read"]), metadata=root)

    signed_in = await sign_in(stub, "bob@example.com")
    me = await stub.Validate(auth_pb2.ValidateRequest(access_token=signed_in.access_token))
    assert (me.user_id, list(me.scopes)) == (created.user_id, ["orders.read"])


async def test_create_user_refuses_duplicates_and_missing_identifiers(admin, root, user):
    """ALREADY_EXISTS for a taken email; INVALID_ARGUMENT naming the field otherwise."""
    taken = await fails(admin.CreateUser(user_admin_pb2.CreateUserRequest(
        email="alice@example.com", password=PASSWORD), metadata=root))
    missing = await fails(admin.CreateUser(user_admin_pb2.CreateUserRequest(
        password=PASSWORD), metadata=root))
    short = await fails(admin.CreateUser(user_admin_pb2.CreateUserRequest(
        username="carol", password="short"), metadata=root))

    assert (taken.code, taken.reason, taken.fields) == (
        grpc.StatusCode.ALREADY_EXISTS, "ALREADY_EXISTS", ["email"])
    assert (missing.code, missing.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["identifier"])
    assert (short.code, short.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["password"])


async def test_list_and_revoke_sessions(admin, root, stub, user):
    """ListSessions shows the user's sessions; RevokeSession refuses its tokens at once."""
    signed_in = await sign_in(stub)

    listed = await admin.ListSessions(user_admin_pb2.ListSessionsRequest(
        email="alice@example.com"), metadata=root)
    await admin.RevokeSession(user_admin_pb2.RevokeSessionRequest(
        session_id=signed_in.session_id), metadata=root)
    again = await admin.RevokeSession(user_admin_pb2.RevokeSessionRequest(
        session_id=signed_in.session_id), metadata=root)

    assert [(s.session_id, s.user_id, s.HasField("revoked_at")) for s in listed.sessions] == \
        [(signed_in.session_id, user, False)]
    assert again == user_admin_pb2.RevokeSessionResponse()
    failure = await fails(stub.Validate(auth_pb2.ValidateRequest(
        access_token=signed_in.access_token)))
    assert failure.reason == "TOKEN_REVOKED"


async def test_revoke_session_names_unknown_and_malformed_ids(admin, root):
    """An unknown session is NOT_FOUND; a malformed id is INVALID_ARGUMENT."""
    unknown = await fails(admin.RevokeSession(user_admin_pb2.RevokeSessionRequest(
        session_id="00000000-0000-4000-8000-000000000000"), metadata=root))
    malformed = await fails(admin.RevokeSession(user_admin_pb2.RevokeSessionRequest(
        session_id="nope"), metadata=root))

    assert (unknown.code, unknown.reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    assert (malformed.code, malformed.fields) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                  ["session_id"])


async def test_disable_user_ends_sessions_and_sign_in(admin, root, stub, user):
    """DisableUser revokes the user's sessions; signing in then fails like a wrong password."""
    signed_in = await sign_in(stub)

    disabled = await admin.DisableUser(user_admin_pb2.DisableUserRequest(user_id=user),
                                       metadata=root)

    assert disabled.user_id == user
    assert (await fails(sign_in(stub))).reason == "INVALID_CREDENTIALS"
    assert (await fails(stub.Validate(auth_pb2.ValidateRequest(
        access_token=signed_in.access_token)))).reason == "TOKEN_REVOKED"


async def test_set_password_replaces_it_and_ends_sessions(admin, root, stub, user):
    """SetPassword: the new password signs in, the old one does not, old sessions end."""
    signed_in = await sign_in(stub)

    await admin.SetPassword(user_admin_pb2.SetPasswordRequest(
        email="alice@example.com", password=NEW_PASSWORD), metadata=root)

    assert (await fails(sign_in(stub))).reason == "INVALID_CREDENTIALS"
    assert (await sign_in(stub, password=NEW_PASSWORD)).user_id == user
    assert (await fails(stub.Validate(auth_pb2.ValidateRequest(
        access_token=signed_in.access_token)))).reason == "TOKEN_REVOKED"


async def test_an_unknown_user_is_not_found(admin, root):
    """Naming a user who does not exist: NOT_FOUND."""
    failure = await fails(admin.DisableUser(user_admin_pb2.DisableUserRequest(
        user_id="00000000-0000-4000-8000-000000000000"), metadata=root))

    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
