"""Property-based fuzzing of every RPC's request fields (hypothesis).

For arbitrary text (unicode, NUL, bytes read as text, sizes up to ~70 KiB)
in every field and in the authorization metadata:

- the answer is never INTERNAL or UNKNOWN;
- nothing changes in the database that the RPC does not promise: SignIn and
  Refresh of garbage create no session or token (only audit rows and
  throttling counters), Revoke of garbage revokes nothing, and Validate and
  GetJwks change no row of any table at all.

Requests over the 64 KiB message limit are refused by gRPC itself with
RESOURCE_EXHAUSTED, and so may metadata past its 8 KiB soft limit: both are
acceptable answers here. Metadata values are printable ASCII, because gRPC
refuses anything else on the client side. Undecodable request bytes are
fuzzed too, and must be INVALID_ARGUMENT (authsvc.transport.decoding).

All properties share one server, started once for the module.
"""

from __future__ import annotations

import dataclasses
import string
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from authsvc.v1 import auth_pb2

from ..helpers import PASSWORD, parse
from .attack_helpers import DELETE, BackgroundService, Parts, b64

NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
FUZZ = settings(max_examples=100, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
LIMIT = 64 * 1024

# --- strategies -------------------------------------------------------------------------

bytes_as_text = st.one_of(st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
                          st.binary(max_size=300).map(lambda b: b.decode("utf-8", "replace")))
huge = st.sampled_from(["x", "\x00", "é", "😀", ".", "@", "+"]).flatmap(
    lambda c: st.integers(0, 70_000 // len(c.encode())).map(lambda n: c * n))
text = st.one_of(st.text(max_size=300), st.text(st.characters(codec="ascii"), max_size=300),
                 bytes_as_text, huge)
printable = st.text(st.sampled_from(string.printable[:95]), max_size=9000)
jwt_segment = st.one_of(
    st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "jku", "jwk", "exp", "sub",
                                     "sid", "iss", "aud", "b64"]),
                    st.recursive(st.none() | st.booleans() | st.floats() | st.integers()
                                 | st.text(max_size=20),
                                 lambda inner: st.lists(inner, max_size=3)
                                 | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                                 max_leaves=6)).map(
        lambda d: b64(repr(d).replace("'", '"').encode())),
    st.binary(max_size=120).map(b64),
    st.text(max_size=40),
)
jwt_shaped = st.lists(jwt_segment, min_size=1, max_size=5).map(".".join)
token = st.one_of(text, jwt_shaped)


@dataclasses.dataclass
class Target:
    """The shared server, alice signed in once."""

    service: BackgroundService
    alice: auth_pb2.SignInResponse

    def call(self, method: str, request: Any, metadata: tuple = ()) -> Any:
        """Make the RPC; return the response, or the parsed failure."""
        try:
            return getattr(self.service.stub, method)(request, metadata=metadata, timeout=30)
        except grpc.RpcError as error:
            return parse(error)


@pytest.fixture(scope="module")
def target(pg_admin_url: str, template_name: str) -> Any:
    with BackgroundService(pg_admin_url, template_name) as service:
        service.run(service.app.accounts.add("email", "alice@example.com", PASSWORD))
        alice = service.stub.SignIn(auth_pb2.SignInRequest(email="alice@example.com",
                                                           password=PASSWORD))
        yield Target(service, alice)


def assert_answer_is_sound(answer: Any, oversize: bool = False) -> None:
    """No INTERNAL/UNKNOWN; RESOURCE_EXHAUSTED only where the size explains it."""
    code = getattr(answer, "code", None)
    assert code not in NEVER, answer
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        assert oversize, answer


def _size(*fields: str) -> int:
    return sum(len(f.encode()) for f in fields)


# --- properties -------------------------------------------------------------------------


@FUZZ
@given(kind=st.sampled_from(["email", "phone", "username", None]), identifier=text,
       password=text)
def test_sign_in_with_garbage_never_errors_nor_creates_a_session(target, kind, identifier,
                                                                  password):
    """Any identifier and password: a client error, and no user, session or token rows
    change (audit rows and throttling counters may)."""
    assume(password != PASSWORD)
    request = auth_pb2.SignInRequest(password=password, **({kind: identifier} if kind else {}))
    before = target.service.snapshot()

    answer = target.call("SignIn", request)

    assert_answer_is_sound(answer, oversize=_size(identifier, password) > LIMIT - 64)
    assert hasattr(answer, "code"), "garbage signed in"
    assert target.service.snapshot() == before


@FUZZ
@given(password=text, case=st.sampled_from([str.upper, str.lower, str.title, str]))
def test_sign_in_as_a_real_user_with_a_wrong_password_changes_nothing(target, password, case):
    """alice's email in any letter case with any wrong password is refused and creates
    nothing."""
    assume(password != PASSWORD)
    before = target.service.snapshot()

    answer = target.call("SignIn", auth_pb2.SignInRequest(email=case("alice@example.com"),
                                                          password=password))

    assert_answer_is_sound(answer, oversize=_size(password) > LIMIT - 64)
    assert answer.code in {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT,
                           grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert target.service.snapshot() == before


@FUZZ
@given(refresh_token=st.one_of(text, st.builds(lambda t, s: t + s, st.just(""), text)),
       mutate=st.booleans())
def test_refresh_of_garbage_never_errors_nor_creates_tokens(target, refresh_token, mutate):
    """Any refresh_token (arbitrary, or alice's with text appended) is a client error and
    creates no token."""
    if mutate:
        refresh_token = target.alice.refresh_token + (refresh_token or "x")
    before = target.service.snapshot()

    answer = target.call("Refresh", auth_pb2.RefreshRequest(refresh_token=refresh_token))

    assert_answer_is_sound(answer, oversize=_size(refresh_token) > LIMIT - 64)
    assert hasattr(answer, "code")
    assert target.service.snapshot() == before


@FUZZ
@given(access_token=token)
def test_validate_of_any_access_token_changes_nothing(target, access_token):
    """Any access_token, garbage or JWT-shaped, is a client error and changes no row of
    any table."""
    before = target.service.snapshot(everything=True)

    answer = target.call("Validate", auth_pb2.ValidateRequest(access_token=access_token))

    assert_answer_is_sound(answer, oversize=_size(access_token) > LIMIT - 64)
    assert hasattr(answer, "code")
    assert target.service.snapshot(everything=True) == before


json_value = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers(-(2**70), 2**70) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=5)
number = st.floats() | st.integers(-(2**70), 2**70)
times = st.dictionaries(st.sampled_from(["iat", "nbf", "exp"]), number | json_value, max_size=3)
others = st.dictionaries(st.sampled_from(["iss", "sub", "aud", "jti", "sid", "scope"]),
                         json_value | st.just(DELETE), max_size=2)
headers = st.dictionaries(st.sampled_from(["typ", "kid", "crit", "cty", "x5t"]), json_value,
                          max_size=1)


@FUZZ
@given(changes=st.tuples(times, st.one_of(st.just({}), others)).map(lambda t: {**t[0], **t[1]}),
       header=st.one_of(st.just({}), headers))
def test_validate_of_tokens_we_signed_with_any_claims_never_errors(target, changes, header):
    """Tokens signed with the service's own key but with arbitrary claim and header values
    are answered with a status (never INTERNAL) and change no row of any table."""
    signer = target.service.app.keystore.ring.signer(target.service.clock())
    parts = Parts.of(target.alice.access_token).with_claims(sid=str(uuid.uuid4()))
    token_ = parts.with_claims(**changes).with_header(**header).signed(signer.alg,
                                                                      signer.private_key)
    before = target.service.snapshot(everything=True)

    answer = target.call("Validate", auth_pb2.ValidateRequest(access_token=token_))

    assert_answer_is_sound(answer, oversize=len(token_) > LIMIT - 64)
    assert target.service.snapshot(everything=True) == before


metadata_keys = st.sampled_from(["authorization", "grpcgateway-authorization",
                                 "x-forwarded-for", "user-agent", "x-request-id"])
metadata_values = st.one_of(printable, printable.map(lambda v: "Bearer " + v),
                            jwt_shaped.filter(lambda v: v.isascii() and v.isprintable())
                            .map(lambda v: "Bearer " + v))


@FUZZ
@given(metadata=st.lists(st.tuples(metadata_keys, metadata_values), max_size=4))
def test_validate_of_any_authorization_metadata_changes_nothing(target, metadata):
    """Any printable authorization metadata (several values, other keys, any scheme) is
    a client error and changes no row of any table."""
    metadata = tuple((k, v.strip()) for k, v in metadata)
    before = target.service.snapshot(everything=True)

    answer = target.call("Validate", auth_pb2.ValidateRequest(), metadata=metadata)

    assert_answer_is_sound(answer, oversize=_size(*(v for _, v in metadata)) > 8 * 1024 - 512)
    assert hasattr(answer, "code")
    assert target.service.snapshot(everything=True) == before


@FUZZ
@given(token_=token, hint=st.integers(-(2**31), 2**31 - 1), all_sessions=st.booleans(),
       metadata=st.lists(st.tuples(metadata_keys, metadata_values), max_size=3))
def test_revoke_of_garbage_revokes_nothing(target, token_, hint, all_sessions, metadata):
    """Any token, hint and all_sessions flag, with any metadata: never an internal
    error, and no session is revoked."""
    metadata = tuple((k, v.strip()) for k, v in metadata)
    request = auth_pb2.RevokeRequest(token=token_, token_type_hint=hint,
                                     all_sessions=all_sessions)
    before = target.service.snapshot()

    answer = target.call("Revoke", request, metadata=metadata)

    assert_answer_is_sound(answer, oversize=_size(token_) > LIMIT - 64
                           or _size(*(v for _, v in metadata)) > 8 * 1024 - 512)
    assert target.service.snapshot() == before


@FUZZ
@given(unknown_fields=st.lists(st.tuples(st.integers(1, 2**29 - 1), st.binary(max_size=200)),
                               max_size=4),
       metadata=st.lists(st.tuples(metadata_keys, metadata_values), max_size=3))
def test_get_jwks_ignores_whatever_comes_with_it(target, unknown_fields, metadata):
    """GetJwks with unknown fields and any metadata answers the same keys and changes
    no row of any table."""
    raw = b"".join(_length_delimited(number, value) for number, value in unknown_fields)
    metadata = tuple((k, v.strip()) for k, v in metadata)
    expected = target.service.stub.GetJwks(auth_pb2.GetJwksRequest())
    before = target.service.snapshot(everything=True)

    answer = target.call("GetJwks", auth_pb2.GetJwksRequest.FromString(raw), metadata=metadata)

    if hasattr(answer, "code"):
        assert_answer_is_sound(answer, oversize=_size(*(v for _, v in metadata)) > 7 * 1024)
    else:
        assert answer == expected
    assert target.service.snapshot(everything=True) == before


REQUESTS = {"SignIn": auth_pb2.SignInRequest, "Refresh": auth_pb2.RefreshRequest,
            "Validate": auth_pb2.ValidateRequest, "Revoke": auth_pb2.RevokeRequest,
            "GetJwks": auth_pb2.GetJwksRequest}


@FUZZ
@given(method=st.sampled_from(sorted(REQUESTS)),
       raw=st.one_of(st.binary(max_size=400),
                     st.lists(st.tuples(st.integers(1, 6), st.binary(max_size=100)),
                              max_size=4).map(lambda fields: b"".join(
                                  _length_delimited(n, v) for n, v in fields))))
def test_raw_request_bytes_never_change_anything(target, method, raw):
    """Arbitrary bytes as any request: never INTERNAL or UNKNOWN (undecodable bytes are
    INVALID_ARGUMENT); decodable or not, nothing is created or revoked."""
    try:
        decoded = REQUESTS[method].FromString(raw)
    except DecodeError:
        decoded = None
    assume(decoded is None or getattr(decoded, "password", None) != PASSWORD)
    call = target.service.channel.unary_unary(f"/authsvc.v1.Auth/{method}")
    before = target.service.snapshot()

    try:
        answer: Any = call(raw, timeout=30)
    except grpc.RpcError as error:
        answer = parse(error)

    if decoded is not None:
        assert_answer_is_sound(answer)
    else:
        assert answer.code == grpc.StatusCode.INVALID_ARGUMENT
    assert target.service.snapshot() == before


def _length_delimited(number: int, value: bytes) -> bytes:
    """A protobuf field ``number`` of wire type 2 holding ``value``."""
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)
