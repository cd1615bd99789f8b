"""The one door's table: every method authsvc serves has exactly one rule, the rules
say what the security model says, and the Auth service is put together from parts
that implement each method once."""

from __future__ import annotations

import asyncio

import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from authsvc.errors import PermissionDenied
from authsvc.guard.interceptor import methods_of
from authsvc.transport import door
from authsvc.transport.account import AccountMethods
from authsvc.transport.federation import FederationMethods
from authsvc.transport.servicer import AUTH_METHODS, auth_servicer
from authsvc.transport.sign_in import SignInMethods
from authsvc.transport.token_services import TokenServiceMethods
from authsvc.v1 import auth_pb2, user_admin_pb2

SERVED = (methods_of(auth_pb2.DESCRIPTOR.services_by_name["Auth"])
          | methods_of(user_admin_pb2.DESCRIPTOR.services_by_name["UserAdmin"])
          | methods_of(health_pb2.DESCRIPTOR.services_by_name["Health"])
          | methods_of(reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]))
STEP_UP = {door.SecondFactor.IF_ENROLLED, door.SecondFactor.ALWAYS}


def _methods(**rule: object) -> set[str]:
    return {name.rpartition("/")[2] for name, found in door.POLICY.items()
            if all(getattr(found, key) == value for key, value in rule.items())}


def test_every_method_served_has_a_rule():
    """Every RPC of every service in the protos (and health, reflection) has a rule."""
    assert door.unlisted(SERVED) == []


def test_the_table_names_no_method_that_is_not_served():
    """No rule is left over for a method that no longer exists (reflection's v1 name
    is served by grpcio-reflection beside v1alpha)."""
    extra = set(door.POLICY) - SERVED
    assert extra == {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"}


def test_every_change_to_factors_or_the_password_needs_a_fresh_second_factor():
    """Adding a factor, changing the password, linking or unlinking another provider's
    identity: a fresh second factor when the user has one; removing a factor or the
    recovery codes: always."""
    assert _methods(second_factor=door.SecondFactor.IF_ENROLLED) == {
        "ChangePassword", "EnrollTotp", "ConfirmTotp", "BeginPasskeyRegistration",
        "FinishPasskeyRegistration", "LinkIdentity", "UnlinkIdentity"}
    assert _methods(second_factor=door.SecondFactor.ALWAYS) == {
        "RemoveTotp", "RegenerateRecoveryCodes", "RemovePasskey"}
    assert all(door.POLICY[name].bearer for name in door.POLICY
               if door.POLICY[name].second_factor in STEP_UP)


def test_only_the_sign_in_flows_and_token_checks_are_public():
    """What answers without a token: signing in and its accounts flows, Validate (its
    token is the subject), the key set, health and reflection."""
    public = {name.rpartition("/")[2] for name, rule in door.POLICY.items()
              if rule is door.PUBLIC}
    assert public == {
        "SignIn", "Refresh", "CompleteSignIn", "BeginPasskeyAssertion", "PasskeySignIn",
        "SignUp", "VerifyIdentifier", "ResendVerification", "RequestPasswordReset",
        "ResetPassword", "StartProviderSignIn", "FinishProviderSignIn", "Validate",
        "GetJwks", "Check", "List", "Watch", "ServerReflectionInfo"}


def test_scoped_methods_name_their_scope():
    """UserAdmin needs authsvc.admin, introspection authsvc.introspect, the feed
    authsvc.revocations (or a verified client certificate)."""
    for name in methods_of(user_admin_pb2.DESCRIPTOR.services_by_name["UserAdmin"]):
        assert door.POLICY[name].scopes == (door.ADMIN_SCOPE,)
    assert door.POLICY["/authsvc.v1.Auth/IntrospectRefreshToken"].scopes == (
        door.INTROSPECT_SCOPE,)
    feed = door.POLICY["/authsvc.v1.Auth/WatchRevocations"]
    assert (feed.scopes, feed.client_certificate) == ((door.WATCH_SCOPE,), True)


def test_revoke_needs_a_token_only_to_end_every_session():
    """Revoke of one token is RFC 7009's (no client authentication); all_sessions needs
    the caller's token."""
    rule = door.POLICY["/authsvc.v1.Auth/Revoke"]
    assert rule.when is not None
    assert rule.when(auth_pb2.RevokeRequest(all_sessions=True))
    assert not rule.when(auth_pb2.RevokeRequest(token="x"))


def test_a_method_without_a_rule_is_refused():
    """The door fails closed: a method it has no rule for is PERMISSION_DENIED."""
    async def enrolled(_user_id: str) -> bool:
        return False

    gate = door.Door(None, enrolled, lambda: 0.0, step_up_max_age=300,  # type: ignore[arg-type]
                     mutual_tls=False)
    with pytest.raises(PermissionDenied):
        asyncio.run(gate.admit(None, object(), None))  # type: ignore[arg-type]


def test_each_auth_method_is_implemented_by_exactly_one_part():
    """The public sign-in part, the account part, the token services and federation
    together implement every Auth method once."""
    owners = {name: [part.__name__ for part in (SignInMethods, AccountMethods,
                                                TokenServiceMethods, FederationMethods)
                     if hasattr(part, name)]
              for name in AUTH_METHODS}
    assert {name: len(found) for name, found in owners.items()} == dict.fromkeys(
        AUTH_METHODS, 1)


def test_a_missing_or_doubled_method_is_refused_when_the_service_is_put_together():
    """auth_servicer refuses parts that leave a method out or implement one twice."""
    class Partial:
        async def SignIn(self) -> None: ...

    with pytest.raises(TypeError, match="no implementation"):
        auth_servicer(Partial())
    with pytest.raises(TypeError, match="implemented twice"):
        auth_servicer(Partial(), Partial())
