"""The user's profile: the OpenID Connect standard claims of its identifiers, read
from the user's row (one read by primary key).

Validate answers it when asked (``ValidateRequest.profile``), and the issuer
puts it into access tokens when AUTHSVC_ACCESS_TOKEN_PROFILE is on.

Privacy: off by default. An access token travels: in Authorization headers
through proxies and load balancers, into access logs, crash reports and
browser tooling, to every service that receives a call, and anyone holding it
can read its payload (a JWT is signed, not encrypted). A user id is a
pseudonym; an email address or phone number is personal data. With the setting
off, the profile stays in authsvc and is answered to whoever presents a valid
token and asks (userinfo, ``Validate`` with ``profile``). Turn it on only where
every hop a token takes may see the identifiers; a token then says the profile
as it was when the token was issued, for its lifetime.
"""

from __future__ import annotations

from ...core.tokens import Profile
from ...store import users as user_rows
from ...store.database import Database
from ...store.users import Identifiers


def profile_of(found: Identifiers | None) -> Profile:
    """The OIDC claims of a user's identifiers: each verified flag beside its
    identifier (that identifier's own proof), none for a username; empty for no user."""
    if found is None:
        return Profile()
    return Profile(
        email=found.email,
        email_verified=None if found.email is None else found.email_verified,
        phone_number=found.phone,
        phone_number_verified=None if found.phone is None else found.phone_verified,
        preferred_username=found.username)


class Profiles:
    """Reads profiles, each with one statement on a pooled connection."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def of(self, user_id: str) -> Profile:
        async with self._db.connection() as conn:
            return profile_of(await user_rows.identifiers(conn, user_id))
