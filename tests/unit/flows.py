"""The hot flows (password sign-in, second-factor sign-in, refresh) assembled as the
composition root assembles them, on the in-memory fakes of their storage
(``tests/unit/fakes.py``): real throttle policy, password hashing (argon2's
cheapest parameters), sessions, issuer and refresh tokens; fakes only for the
rows, and for the factor checks (whose TOTP and WebAuthn rows are not part of the
seam: the rpc tier covers those)."""

from __future__ import annotations

import jwt

from authsvc.clock import FakeClock
from authsvc.core.keys import KeyRing, SigningKey, public_jwk
from authsvc.core.tokens import TokenRules
from authsvc.domain.accounts.passwords import Passwords
from authsvc.domain.caller import Caller
from authsvc.domain.factors.attempts import PASSKEY, RECOVERY_CODE, TOTP, Attempt
from authsvc.domain.factors.mfa import SecondFactorSignIn
from authsvc.domain.keycrypto import generate_private_key
from authsvc.domain.sessions.devices import DeviceTokens
from authsvc.domain.sessions.opener import Sessions
from authsvc.domain.sessions.refresh import Refresh
from authsvc.domain.sessions.refresh_tokens import RefreshTokens
from authsvc.domain.sessions.signin import SignIn
from authsvc.domain.throttling.throttle import Throttle, ThrottlePolicy
from authsvc.domain.tokens.issuer import Issuer
from authsvc.store.throttles import Tarpit

from .fakes import FakeStore

PASSWORD = "correct horse battery staple"
KEK = bytes(range(32))
START = 1_800_000_000.0
ACCESS_TTL = 900
SESSION_TTL = 86400
IDLE_TTL = 3600
GRACE = 10.0
MFA_TTL = 300
CALLER = Caller(client_addr="203.0.113.7", user_agent="unit")
RULES = TokenRules(issuer="authsvc", audience="authsvc", algorithms=frozenset({"ES256"}),
                   leeway=30, max_lifetime=ACCESS_TTL)
POLICY = ThrottlePolicy(
    identifier=Tarpit(free=10, base=1.0, cap=60.0, window=900.0),
    address=Tarpit(free=20, base=1.0, cap=60.0, window=900.0),
    pair=Tarpit(free=3, base=1.0, cap=60.0, window=900.0),
    refresh_address=Tarpit(free=3, base=1.0, cap=60.0, window=900.0),
    trust_ttl=3600.0,
    code=Tarpit(free=8, base=1.0, cap=60.0, window=900.0))


def _key() -> SigningKey:
    private = generate_private_key("ES256")
    jwk = public_jwk("ES256", private.public_key())
    return SigningKey(kid=jwk["kid"], alg="ES256", public_key=private.public_key(),
                      private_key=private, jwk=jwk, created_at=START - 3600,
                      activates_at=START - 3600, retired_at=None, publish_until=None)


class _Keys:
    def __init__(self) -> None:
        self.ring = KeyRing([_key()])


class FakeFactors:
    """``Factors`` for the flows: which factors a user has (the fake's summary) and
    their one right code, checked behind the real per-user code tarpit."""

    def __init__(self, fake: FakeStore, throttle: Throttle) -> None:
        self._fake = fake
        self._throttle = throttle
        self.codes: dict[str, str] = {}

    async def available(self, conn: object, user_id: str) -> tuple[str, ...]:
        found = await self._fake.storage.challenges.summary(conn, user_id)
        if not found.any:
            return ()
        return tuple(name for name, present in ((TOTP, found.totp), (PASSKEY, found.passkeys),
                                                 (RECOVERY_CODE, found.recovery_codes))
                     if present)

    async def check(self, conn: object, user_id: str, attempt: Attempt,
                    ) -> tuple[str | None, float | None]:
        wait = await self._throttle.reserve_code(conn, user_id)
        if wait is not None:
            return None, wait
        if attempt.totp is None or attempt.totp != self.codes.get(user_id):
            return None, None
        await self._throttle.code_succeeded(conn, user_id)
        return "otp", None


class FakePasskeys:
    """``Passkeys`` as a second factor: the assertion ``"genuine"`` proves a device-bound
    passkey, anything else does not (behind the same code tarpit)."""

    def __init__(self, throttle: Throttle) -> None:
        self._throttle = throttle

    async def check(self, conn: object, user_id: str, mfa_hash: bytes, ceremony_id: str,
                    credential_json: str, caller: Caller) -> tuple[str | None, float | None]:
        wait = await self._throttle.reserve_code(conn, user_id)
        if wait is not None:
            return None, wait
        if credential_json != "genuine":
            return None, None
        await self._throttle.code_succeeded(conn, user_id)
        return "hwk", None


class Remembered:
    """``Revocations.remember``: what this worker was told to refuse at once."""

    def __init__(self) -> None:
        self.sessions: list[str] = []

    def remember(self, session_ids: list[str]) -> None:
        self.sessions += session_ids


class Flows:
    """The three flows over one fake store; ``clock`` is the replica's and, for the
    fake, the database's too."""

    def __init__(self, policy: ThrottlePolicy = POLICY) -> None:
        self.clock = FakeClock(START)
        self.fake = FakeStore(self.clock)
        storage = self.fake.storage
        self.throttle = Throttle(storage.db, storage.throttles, policy, KEK)
        self.tokens = RefreshTokens(KEK)
        issuer = Issuer(_Keys(), RULES, ACCESS_TTL, IDLE_TTL)
        self.sessions = Sessions(storage, issuer, self.tokens, self.clock,
                                 session_ttl=SESSION_TTL, mfa_token_ttl=MFA_TTL)
        self.passwords = Passwords("test-only-cheapest", 1)
        self.factors = FakeFactors(self.fake, self.throttle)
        self.remembered = Remembered()
        self.sign_in = SignIn(storage, self.clock, self.passwords, self.throttle,
                              DeviceTokens(KEK, self.clock, 3600), self.sessions, self.factors)
        self.second_factor = SecondFactorSignIn(storage, self.sessions, self.factors,
                                                FakePasskeys(self.throttle))
        self.refresh = Refresh(storage, self.throttle, self.remembered, self.sessions,
                               self.tokens, grace=GRACE, idle_ttl=IDLE_TTL,
                               audit_success=True)

    async def add_user(self, email: str = "alice@example.com", **options: object) -> str:
        password_hash = await self.passwords.hash(PASSWORD)
        return self.fake.add_user(email, password_hash, **options)  # type: ignore[arg-type]

    def close(self) -> None:
        self.passwords.close()


def claims(access_token: str) -> dict[str, object]:
    """The access token's claims (its signature is the issuer's business, tested apart)."""
    decoded: dict[str, object] = jwt.decode(access_token, options={"verify_signature": False})
    return decoded
