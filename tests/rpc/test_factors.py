"""Second factors over real gRPC and PostgreSQL: TOTP enrolment, the MFA_REQUIRED
sign-in and CompleteSignIn, drift, replay, throttling, recovery codes, encryption at
rest, amr/acr/auth_time in the tokens, and the administrator's reset.

TOTP codes are judged by the database's time step (``now()``), which a test cannot
move. Codes are therefore picked relative to the step the test reads from the
database just before the call: a call lands in that step or, if a step boundary
passes in between, the next one; the codes of steps s and s+1 pass in both, those
of s-2 and s+3 in neither. The one case that depends on landing in s exactly (one
step behind) reads the step again afterwards and tries again if it moved.
"""

from __future__ import annotations

import asyncio
import base64

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from authsvc.domain.factors import totp
from authsvc.v1 import auth_pb2, user_admin_pb2, user_admin_pb2_grpc

from ..helpers import PASSWORD, bearer, fails, sign_in, travel


async def db_step(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT floor(extract(epoch FROM now()) / 30)::bigint"))
    finally:
        await conn.close()


def error_metadata(error: grpc.RpcError) -> dict[str, str]:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return dict(info.metadata)
    raise AssertionError("no ErrorInfo")


async def mfa_required(stub, email: str = "alice@example.com") -> dict[str, str]:
    """SignIn with the right password of a user with a factor: the ErrorInfo metadata."""
    try:
        await stub.SignIn(auth_pb2.SignInRequest(email=email, password=PASSWORD))
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        return error_metadata(error)
    raise AssertionError("SignIn did not ask for a second factor")


def complete(stub, mfa_token: str, **factor: str):
    return stub.CompleteSignIn(auth_pb2.CompleteSignInRequest(mfa_token=mfa_token, **factor))


def secret_of(enrolment: auth_pb2.EnrollTotpResponse) -> bytes:
    padded = enrolment.secret + "=" * (-len(enrolment.secret) % 8)
    return base64.b32decode(padded)


class Enrolled:
    """alice with an active authenticator app: its secret, her recovery codes, the step
    whose code confirmed it, her id, and the access token of the password-only session
    she enrolled from (as a stolen one would be)."""

    def __init__(self, secret: bytes, codes: list[str], confirmed_step: int, user_id: str,
                 password_only_token: str) -> None:
        self.secret = secret
        self.codes = codes
        self.confirmed_step = confirmed_step
        self.user_id = user_id
        self.password_only_token = password_only_token

    def code(self, step: int) -> str:
        return totp.code(self.secret, step)


async def enable_totp(stub, token: str, database_url: str) -> tuple[bytes, int, list[str]]:
    """Enrol and confirm an authenticator app with ``token``: its secret, the step whose
    code confirmed it, and the recovery codes."""
    metadata = bearer(token)
    secret = secret_of(await stub.EnrollTotp(auth_pb2.EnrollTotpRequest(), metadata=metadata))
    step = await db_step(database_url)
    confirmed = await stub.ConfirmTotp(auth_pb2.ConfirmTotpRequest(code=totp.code(secret, step)),
                                       metadata=metadata)
    return secret, step, list(confirmed.recovery_codes)


@pytest.fixture
async def enrolled(stub, user, database_url) -> Enrolled:
    signed_in = await sign_in(stub)
    secret, step, codes = await enable_totp(stub, signed_in.access_token, database_url)
    return Enrolled(secret, codes, step, user, signed_in.access_token)


async def test_enrolment_answers_a_secret_and_an_otpauth_uri(stub, user):
    """EnrollTotp (bearer) answers a base32 secret of 160 bits and its otpauth:// URI."""
    signed_in = await sign_in(stub)

    enrolment = await stub.EnrollTotp(auth_pb2.EnrollTotpRequest(),
                                      metadata=bearer(signed_in.access_token))

    assert len(secret_of(enrolment)) == 20
    assert enrolment.uri == (
        f"otpauth://totp/authsvc:alice@example.com?secret={enrolment.secret}"
        "&issuer=authsvc&algorithm=SHA1&digits=6&period=30")


async def test_enrolment_needs_a_bearer_token(stub, user):
    """EnrollTotp without a token is UNAUTHENTICATED."""
    failure = await fails(stub.EnrollTotp(auth_pb2.EnrollTotpRequest()))

    assert failure.code == grpc.StatusCode.UNAUTHENTICATED


async def test_a_pending_secret_does_not_guard_sign_in(stub, user):
    """Until ConfirmTotp, SignIn answers tokens as before."""
    signed_in = await sign_in(stub)
    await stub.EnrollTotp(auth_pb2.EnrollTotpRequest(), metadata=bearer(signed_in.access_token))

    again = await sign_in(stub)

    assert again.access_token


async def test_confirm_with_a_wrong_code_is_code_invalid(stub, user, database_url):
    """A wrong first code leaves the factor pending: CODE_INVALID, and SignIn still
    answers tokens."""
    signed_in = await sign_in(stub)
    metadata = bearer(signed_in.access_token)
    enrolment = await stub.EnrollTotp(auth_pb2.EnrollTotpRequest(), metadata=metadata)
    wrong = totp.code(secret_of(enrolment), await db_step(database_url) - 2)

    failure = await fails(stub.ConfirmTotp(auth_pb2.ConfirmTotpRequest(code=wrong),
                                           metadata=metadata))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CODE_INVALID")
    assert (await sign_in(stub)).access_token


async def test_confirm_accepts_the_code_one_step_behind(stub, user, database_url):
    """Drift: the code of the step before the database's current one is accepted."""
    signed_in = await sign_in(stub)
    metadata = bearer(signed_in.access_token)
    secret = secret_of(await stub.EnrollTotp(auth_pb2.EnrollTotpRequest(), metadata=metadata))

    for _ in range(3):  # again only if a step boundary passed during the call
        before = await db_step(database_url)
        try:
            confirmed = await stub.ConfirmTotp(
                auth_pb2.ConfirmTotpRequest(code=totp.code(secret, before - 1)),
                metadata=metadata)
        except grpc.RpcError:
            assert await db_step(database_url) != before, "refused within its step"
            continue
        break
    else:
        raise AssertionError("three step boundaries in three calls")

    assert len(confirmed.recovery_codes) == 10


async def test_a_confirmed_factor_cannot_be_enrolled_over(stub, enrolled):
    """EnrollTotp while an authenticator app is active: FAILED_PRECONDITION
    FACTOR_CONFLICT (remove it first, with a fresh second factor)."""
    signed_in = await sign_in_with_code(stub, enrolled, enrolled.confirmed_step + 1)

    failure = await fails(stub.EnrollTotp(auth_pb2.EnrollTotpRequest(),
                                          metadata=bearer(signed_in.access_token)))

    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                              "FACTOR_CONFLICT")


async def sign_in_with_code(stub, enrolled: Enrolled, step: int,
                            ) -> auth_pb2.CompleteSignInResponse:
    metadata = await mfa_required(stub)
    response: auth_pb2.CompleteSignInResponse = await complete(
        stub, metadata["mfa_token"], totp=enrolled.code(step))
    return response


async def test_sign_in_asks_for_the_second_factor(stub, enrolled):
    """With a factor, the right password answers UNAUTHENTICATED MFA_REQUIRED, the
    mfa_token and the factors in its ErrorInfo metadata, and no session."""
    try:
        await stub.SignIn(auth_pb2.SignInRequest(email="alice@example.com", password=PASSWORD))
    except grpc.RpcError as error:
        failure, metadata = error, error_metadata(error)
    else:
        raise AssertionError("no MFA_REQUIRED")

    assert failure.code() == grpc.StatusCode.UNAUTHENTICATED
    assert sorted(metadata) == ["expires_in", "factors", "mfa_token"]
    assert metadata["factors"] == "totp recovery_code"
    assert metadata["expires_in"] == "300"
    assert len(metadata["mfa_token"]) == 43
    assert PASSWORD not in failure.details()


async def test_a_wrong_password_is_still_invalid_credentials(stub, enrolled):
    """A user with a factor and a wrong password: INVALID_CREDENTIALS, as for anyone."""
    failure = await fails(stub.SignIn(auth_pb2.SignInRequest(email="alice@example.com",
                                                             password="wrong password!")))

    assert failure.reason == "INVALID_CREDENTIALS"


async def test_complete_sign_in_returns_tokens_with_amr_otp(stub, enrolled, database_url,
                                                           user):
    """CompleteSignIn with the current code answers the token pair; the access token says
    amr pwd+otp, acr aal2 and when the user authenticated."""
    step = await db_step(database_url)

    tokens = await sign_in_with_code(stub, enrolled, step + 1)

    assert (tokens.user_id, tokens.token_type) == (user, "Bearer")
    validated = await stub.Validate(auth_pb2.ValidateRequest(access_token=tokens.access_token))
    assert list(validated.amr) == ["pwd", "otp"]
    assert validated.acr == "aal2"
    assert validated.auth_time.seconds == validated.issued_at.seconds


async def test_a_password_only_token_says_amr_pwd(stub, user):
    """Without a factor, the token says amr pwd and acr aal1."""
    signed_in = await sign_in(stub)

    validated = await stub.Validate(auth_pb2.ValidateRequest(
        access_token=signed_in.access_token))

    assert (list(validated.amr), validated.acr) == (["pwd"], "aal1")
    assert validated.auth_time.seconds == validated.issued_at.seconds


async def test_refreshed_tokens_keep_amr_and_the_original_auth_time(stub, enrolled, clock,
                                                                  database_url):
    """A refresh a minute later carries the sign-in's amr and auth_time, not the
    refresh's time."""
    tokens = await sign_in_with_code(stub, enrolled, await db_step(database_url) + 1)
    first = await stub.Validate(auth_pb2.ValidateRequest(access_token=tokens.access_token))
    await travel(database_url, 60, clock)

    refreshed = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=tokens.refresh_token))

    validated = await stub.Validate(auth_pb2.ValidateRequest(
        access_token=refreshed.access_token))
    assert list(validated.amr) == ["pwd", "otp"]
    assert validated.issued_at.seconds >= first.issued_at.seconds + 60
    assert abs(validated.auth_time.seconds - first.auth_time.seconds) <= 1


async def test_a_code_is_accepted_once(stub, enrolled, database_url):
    """Replay: the same code again, with a fresh mfa_token, is CODE_INVALID."""
    code = enrolled.code(await db_step(database_url) + 1)
    first = await mfa_required(stub)
    await complete(stub, first["mfa_token"], totp=code)
    second = await mfa_required(stub)

    failure = await fails(complete(stub, second["mfa_token"], totp=code))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CODE_INVALID")


async def test_a_code_older_than_the_last_accepted_one_is_refused(stub, enrolled,
                                                                 database_url):
    """After the code of step s+1, the (still in-window) code of step s is refused."""
    step = await db_step(database_url)
    await sign_in_with_code(stub, enrolled, step + 1)
    metadata = await mfa_required(stub)

    failure = await fails(complete(stub, metadata["mfa_token"], totp=enrolled.code(step)))

    assert failure.reason == "CODE_INVALID"


async def test_concurrent_completions_with_one_code_let_one_through(stub, enrolled,
                                                                   database_url):
    """Two sign-ins racing with the same code (real concurrency): exactly one session."""
    code = enrolled.code(await db_step(database_url) + 1)
    tokens = [(await mfa_required(stub))["mfa_token"] for _ in range(2)]

    results = await asyncio.gather(*(complete(stub, t, totp=code) for t in tokens),
                                   return_exceptions=True)

    answered = [r for r in results if isinstance(r, auth_pb2.CompleteSignInResponse)]
    refused = [r for r in results if isinstance(r, grpc.RpcError)]
    assert (len(answered), len(refused)) == (1, 1)
    assert refused[0].code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("offset", [-2, 3])
async def test_codes_beyond_one_step_of_drift_are_refused(stub, enrolled, database_url,
                                                         offset):
    """Two steps behind or more than one ahead: CODE_INVALID."""
    metadata = await mfa_required(stub)
    step = await db_step(database_url)

    failure = await fails(complete(stub, metadata["mfa_token"],
                                   totp=enrolled.code(step + offset)))

    assert failure.reason == "CODE_INVALID"


async def test_wrong_codes_are_throttled_per_user(stub, enrolled, database_url, clock):
    """Five wrong codes are free; the sixth (across mfa_tokens) starts a block, so the
    seventh attempt, even with the right code, is RESOURCE_EXHAUSTED RATE_LIMITED with
    RetryInfo, unchecked; once the block has passed the right code works."""
    wrong = enrolled.code(await db_step(database_url) - 5)
    for _ in range(6):
        metadata = await mfa_required(stub)
        failure = await fails(complete(stub, metadata["mfa_token"], totp=wrong))
        assert failure.reason == "CODE_INVALID"
    metadata = await mfa_required(stub)

    blocked = await fails(complete(stub, metadata["mfa_token"],
                                   totp=enrolled.code(await db_step(database_url) + 1)))

    assert (blocked.code, blocked.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                                              "RATE_LIMITED")
    assert blocked.retry_delay == 1
    await travel(database_url, 2, clock)
    tokens = await complete(stub, metadata["mfa_token"],
                            totp=enrolled.code(await db_step(database_url) + 1))
    assert tokens.access_token


async def test_an_mfa_token_is_single_use(stub, enrolled, database_url):
    """After its success, the mfa_token is MFA_TOKEN_INVALID."""
    metadata = await mfa_required(stub)
    step = await db_step(database_url)
    await complete(stub, metadata["mfa_token"], totp=enrolled.code(step + 1))

    failure = await fails(complete(stub, metadata["mfa_token"], recovery_code=enrolled.codes[0]))

    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                              "MFA_TOKEN_INVALID")


async def test_an_mfa_token_expires(stub, enrolled, database_url, clock):
    """Past AUTHSVC_MFA_TOKEN_TTL (300 s) by the database's clock: MFA_TOKEN_INVALID."""
    metadata = await mfa_required(stub)
    await travel(database_url, 301, clock)

    failure = await fails(complete(stub, metadata["mfa_token"], recovery_code=enrolled.codes[0]))

    assert failure.reason == "MFA_TOKEN_INVALID"


async def test_an_mfa_token_dies_after_five_wrong_codes(stub, enrolled, database_url, app):
    """The sixth code on one mfa_token is MFA_TOKEN_INVALID, right or not."""
    metadata = await mfa_required(stub)
    wrong = enrolled.code(await db_step(database_url) - 5)
    for _ in range(5):
        await fails(complete(stub, metadata["mfa_token"], totp=wrong))
    async with app.db.connection() as conn:  # the tarpit is the next test's subject
        await conn.execute("DELETE FROM throttles")

    failure = await fails(complete(stub, metadata["mfa_token"], recovery_code=enrolled.codes[0]))

    assert failure.reason == "MFA_TOKEN_INVALID"


async def test_a_password_change_in_between_ends_the_sign_in(stub, enrolled, app, database_url):
    """The password changed after MFA_REQUIRED: the right code gets MFA_TOKEN_INVALID."""
    metadata = await mfa_required(stub)
    await app.accounts.set_password(enrolled.user_id, "another password 2")

    failure = await fails(complete(stub, metadata["mfa_token"],
                                   totp=enrolled.code(await db_step(database_url) + 1)))

    assert failure.reason == "MFA_TOKEN_INVALID"


async def test_a_recovery_code_works_once(stub, enrolled):
    """A recovery code completes a sign-in (amr otp), once; nine are left."""
    first = await mfa_required(stub)
    code = enrolled.codes[3].upper().replace("-", " ")  # as someone might type it

    tokens = await complete(stub, first["mfa_token"], recovery_code=code)

    validated = await stub.Validate(auth_pb2.ValidateRequest(access_token=tokens.access_token))
    assert list(validated.amr) == ["pwd", "otp"]
    second = await mfa_required(stub)
    failure = await fails(complete(stub, second["mfa_token"], recovery_code=enrolled.codes[3]))
    assert failure.reason == "CODE_INVALID"
    listed = await stub.ListFactors(auth_pb2.ListFactorsRequest(),
                                    metadata=bearer(tokens.access_token))
    assert (listed.totp, listed.recovery_codes_left) == (True, 9)


async def test_regenerating_recovery_codes_voids_the_old_ones(stub, enrolled):
    """RegenerateRecoveryCodes (fresh second factor) answers ten new codes; an unused old
    one is refused, a new one works."""
    first = await mfa_required(stub)
    tokens = await complete(stub, first["mfa_token"], recovery_code=enrolled.codes[0])

    fresh = await stub.RegenerateRecoveryCodes(auth_pb2.RegenerateRecoveryCodesRequest(),
                                               metadata=bearer(tokens.access_token))

    assert len(set(fresh.recovery_codes)) == 10
    assert not set(fresh.recovery_codes) & set(enrolled.codes)
    old = await mfa_required(stub)
    failure = await fails(complete(stub, old["mfa_token"], recovery_code=enrolled.codes[1]))
    assert failure.reason == "CODE_INVALID"
    new = await mfa_required(stub)
    assert (await complete(stub, new["mfa_token"],
                           recovery_code=fresh.recovery_codes[0])).access_token


async def test_changing_factors_needs_a_fresh_second_factor(stub, enrolled, clock,
                                                           database_url):
    """RemoveTotp with a password-only token, or a second-factor sign-in older than
    AUTHSVC_STEP_UP_MAX_AGE, is INSUFFICIENT_USER_AUTHENTICATION with an RFC 9470
    challenge; with a fresh one it removes the factor and SignIn answers tokens again."""
    weak = await fails(stub.RemoveTotp(auth_pb2.RemoveTotpRequest(),
                                       metadata=bearer(enrolled.password_only_token)))
    tokens = await sign_in_with_code(stub, enrolled, await db_step(database_url) + 1)
    await travel(database_url, 301, clock)
    stale = await fails(stub.RemoveTotp(auth_pb2.RemoveTotpRequest(),
                                        metadata=bearer(tokens.access_token)))
    again = await mfa_required(stub)  # the code of the first is spent; the clock is real
    tokens = await complete(stub, again["mfa_token"], recovery_code=enrolled.codes[0])

    await stub.RemoveTotp(auth_pb2.RemoveTotpRequest(), metadata=bearer(tokens.access_token))

    for failure in (weak, stale):
        assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED,
                                                  "INSUFFICIENT_USER_AUTHENTICATION")
        assert failure.challenge == (
            'Bearer realm="authsvc", error="insufficient_user_authentication", '
            'error_description="A stronger or more recent authentication is required", '
            'acr_values="aal2", max_age="300"')
    assert (await sign_in(stub)).access_token


async def test_the_secret_and_the_codes_are_not_stored_in_plaintext(stub, enrolled,
                                                                   database_url):
    """The totp_factors row holds neither the secret nor its base32; recovery_codes
    holds none of the codes."""
    conn = await asyncpg.connect(database_url)
    try:
        stored = bytes(await conn.fetchval("SELECT secret FROM totp_factors"))
        hashes = [bytes(r["code_hash"]) for r in await conn.fetch(
            "SELECT code_hash FROM recovery_codes")]
    finally:
        await conn.close()

    readable = base64.b32encode(enrolled.secret)
    assert enrolled.secret not in stored
    assert readable not in stored and readable.lower() not in stored
    assert len(stored) == 1 + 12 + 20 + 16  # envelope version, nonce, ciphertext, tag
    assert len(hashes) == 10
    for code in enrolled.codes:
        for form in (code, code.replace("-", "")):
            assert all(form.encode() not in h for h in hashes)


@pytest.mark.parametrize(("factor", "field"), [
    ({"totp": "12ab56"}, "totp"),
    ({"totp": "1234567"}, "totp"),
    ({"recovery_code": "not-a-code!"}, "recovery_code"),
    ({}, "factor"),
])
async def test_malformed_codes_are_invalid_argument(stub, enrolled, factor, field):
    """A code that cannot be one: INVALID_ARGUMENT naming the field."""
    metadata = await mfa_required(stub)

    failure = await fails(complete(stub, metadata["mfa_token"], **factor))

    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field])


async def test_an_empty_mfa_token_is_invalid_argument(stub):
    failure = await fails(complete(stub, "", totp="123456"))

    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["mfa_token"])


async def test_an_administrator_resets_factors_audited(stub, enrolled, app, channel):
    """UserAdmin.ResetFactors removes the factors, revokes every session and writes a
    factor.reset audit row; the next SignIn answers tokens."""
    tokens = await sign_in_with_code(stub, enrolled, enrolled.confirmed_step + 1)
    await app.accounts.add("username", "root", PASSWORD, ("authsvc.admin",))
    root = await stub.SignIn(auth_pb2.SignInRequest(username="root", password=PASSWORD))
    admin = user_admin_pb2_grpc.UserAdminStub(channel)

    reset = await admin.ResetFactors(user_admin_pb2.ResetFactorsRequest(
        email="alice@example.com"), metadata=bearer(root.access_token))

    assert reset.user_id == tokens.user_id
    revoked = await fails(stub.Validate(auth_pb2.ValidateRequest(
        access_token=tokens.access_token)))
    assert revoked.reason == "TOKEN_REVOKED"
    async with app.db.connection() as conn:
        kinds = [r["kind"] for r in await conn.fetch(
            "SELECT kind FROM auth_events WHERE user_id = $1::uuid ORDER BY id",
            tokens.user_id)]
    assert "factor.reset" in kinds
    assert (await sign_in(stub)).access_token


async def test_expired_challenges_are_pruned(stub, enrolled, app, clock, database_url):
    """Housekeeping deletes a sign-in challenge once expired, and not before. (It also
    runs in the background every second, so the rows are counted, not the passes.)"""
    await mfa_required(stub)
    await app.retention.prune()
    async with app.db.connection() as conn:
        early = await conn.fetchval("SELECT count(*) FROM mfa_challenges")
    await travel(database_url, 301, clock)

    await app.retention.prune()

    async with app.db.connection() as conn:
        late = await conn.fetchval("SELECT count(*) FROM mfa_challenges")
    assert (early, late) == (1, 0)
