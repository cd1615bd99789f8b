"""UserAdmin.ImportUsers: the import over gRPC, for an administrator only."""

from __future__ import annotations

import json

import bcrypt
import grpc
import pytest

from authsvc.runtime.app import App
from authsvc.v1 import auth_pb2, user_admin_pb2, user_admin_pb2_grpc

from ..helpers import PASSWORD, bearer, fails

BCRYPT = bcrypt.hashpw(b"old password 1", bcrypt.gensalt(4)).decode()
LINES = [
    json.dumps({"external_id": "src:1", "email": "ada@example.com",
                "password": {"scheme": "bcrypt", "hash": BCRYPT}}),
    json.dumps({"external_id": "src:2", "email": "bob@example.com",
                "password": {"scheme": "sha1", "hash": "0" * 40}}),
    json.dumps({"external_id": "src:3", "email": "ada@example.com"}),
]


@pytest.fixture
async def admin(app: App, stub, channel) -> tuple[user_admin_pb2_grpc.UserAdminStub, str]:
    await app.accounts.add("username", "root", PASSWORD, ("authsvc.admin",))
    root = await stub.SignIn(auth_pb2.SignInRequest(username="root", password=PASSWORD))
    return user_admin_pb2_grpc.UserAdminStub(channel), root.access_token


async def test_import_users_creates_and_reports_each_line(admin, stub):
    """Created, refused (weak hash; identifier taken) and, sent again, skipped; the
    imported user signs in with the old password."""
    users, token = admin
    request = user_admin_pb2.ImportUsersRequest(lines=LINES)

    first = await users.ImportUsers(request, metadata=bearer(token))
    again = await users.ImportUsers(request, metadata=bearer(token))
    signed_in = await stub.SignIn(auth_pb2.SignInRequest(email="ada@example.com",
                                                         password="old password 1"))

    assert (first.created, first.skipped, first.refused, first.weak_refused) == (1, 0, 2, 1)
    assert [(o.line, o.external_id, o.outcome, o.field) for o in first.outcomes] == [
        (2, "src:2", "refused", "password.scheme"), (3, "src:3", "refused", "email")]
    assert (again.created, again.skipped, again.refused) == (0, 1, 2)
    assert signed_in.access_token


async def test_a_dry_run_reports_every_line_and_creates_nobody(admin, stub):
    """dry_run: each line's outcome, and the user does not exist afterwards."""
    users, token = admin

    dry = await users.ImportUsers(user_admin_pb2.ImportUsersRequest(
        lines=LINES, dry_run=True, allow_weak_hashes=True), metadata=bearer(token))
    failure = await fails(stub.SignIn(auth_pb2.SignInRequest(email="ada@example.com",
                                                             password="old password 1")))

    assert [(o.line, o.outcome) for o in dry.outcomes] == [
        (1, "created"), (2, "created"), (3, "refused")]
    assert (dry.created, dry.weak_created) == (2, 1)
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "INVALID_CREDENTIALS")


@pytest.mark.parametrize("count", [0, 1001])
async def test_an_empty_or_oversized_batch_is_invalid_argument(admin, count):
    """No line, or more than 1000: INVALID_ARGUMENT naming lines."""
    users, token = admin

    failure = await fails(users.ImportUsers(user_admin_pb2.ImportUsersRequest(
        lines=["{}"] * count), metadata=bearer(token)))

    assert (failure.code, failure.reason, failure.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["lines"])


async def test_import_users_needs_the_admin_scope(app: App, stub, channel, user):
    """A user's own token is PERMISSION_DENIED INSUFFICIENT_SCOPE; no token is
    UNAUTHENTICATED."""
    users = user_admin_pb2_grpc.UserAdminStub(channel)
    own = await stub.SignIn(auth_pb2.SignInRequest(email="alice@example.com",
                                                   password=PASSWORD))
    request = user_admin_pb2.ImportUsersRequest(lines=LINES)

    denied = await fails(users.ImportUsers(request, metadata=bearer(own.access_token)))
    anonymous = await fails(users.ImportUsers(request))

    assert (denied.code, denied.reason) == (grpc.StatusCode.PERMISSION_DENIED,
                                            "INSUFFICIENT_SCOPE")
    assert anonymous.code == grpc.StatusCode.UNAUTHENTICATED
