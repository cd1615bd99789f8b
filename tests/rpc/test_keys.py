"""Key rotation: publish before signing, keep retired keys until their tokens expired."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import jwt
import pytest

from authsvc.core.verification import ReloadGate
from authsvc.domain.caller import Caller
from authsvc.errors import ConfigError
from authsvc.runtime.app import running_app
from authsvc.v1 import auth_pb2

from ..helpers import PASSWORD, fails, sign_in


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


async def jwks_kids(stub) -> list[str]:
    return [k.kid for k in (await stub.GetJwks(auth_pb2.GetJwksRequest())).keys]


async def test_rotation_publishes_first_signs_later_and_retires_after_expiry(
        stub, app, user, clock):
    """A new key is in the JWKS before it signs; the old one stays until its tokens expired."""
    old_token = (await sign_in(stub)).access_token
    old_kid = kid_of(old_token)

    new_kid = await app.keystore.rotate(publish_ahead=60)

    assert sorted(await jwks_kids(stub)) == sorted([old_kid, new_kid])
    assert kid_of((await sign_in(stub)).access_token) == old_kid  # not signing yet
    clock.advance(61)
    new_token = (await sign_in(stub)).access_token
    assert kid_of(new_token) == new_kid
    await stub.Validate(auth_pb2.ValidateRequest(access_token=old_token))  # still valid
    clock.advance(900 + 30)  # every token the old key signed has expired
    assert await jwks_kids(stub) == [new_kid]
    assert (await fails(stub.Validate(auth_pb2.ValidateRequest(
        access_token=old_token)))).reason == "TOKEN_EXPIRED"


async def test_every_replica_signs_with_the_new_key(stub, app, user, clock, settings,
                                                    database_url):
    """A second replica on the same database signs with the new key once it activates."""
    async with running_app(settings, database_url, clock) as other:
        new_kid = await app.keystore.rotate(publish_ahead=60)
        await other.keystore.load()  # what each worker's housekeeping does every 30 s
        clock.advance(61)

        signer_here = app.keystore.ring.signer(clock())
        signer_there = other.keystore.ring.signer(clock())

    assert signer_here.kid == signer_there.kid == new_kid


async def test_a_token_signed_by_a_key_this_replica_has_not_loaded_is_accepted(
        stub, app, user, clock, settings, database_url):
    """An unknown kid makes a replica reload the ring (rate-limited) before refusing."""
    async with running_app(settings, database_url, clock) as other:
        await other.keystore.rotate(publish_ahead=0)
        clock.advance(1)
        token = (await other.sign_in.sign_in("email", "alice@example.com", PASSWORD,
                                              Caller())).tokens.access_token
    app.keystore._reloads = ReloadGate(0)  # the test's clock did not move the real one

    response = await stub.Validate(auth_pb2.ValidateRequest(access_token=token))

    assert response.user_id == user


async def test_retiring_the_only_key_is_refused(app):
    """There must always be a key to sign with."""
    (only,) = app.keystore.ring.all()

    with pytest.raises(ConfigError, match="rotate"):
        await app.keystore.retire(only.kid)


async def test_retiring_a_key_keeps_it_published_until_its_tokens_expired(
        stub, app, user, clock):
    """After rotate and retire, the old key verifies old tokens and leaves the JWKS later."""
    old_token = (await sign_in(stub)).access_token
    await app.keystore.rotate(publish_ahead=0)
    clock.advance(1)

    await app.keystore.retire(kid_of(old_token))

    await stub.Validate(auth_pb2.ValidateRequest(access_token=old_token))
    assert len(await jwks_kids(stub)) == 2


def test_keys_cli_lists_rotates_and_retires(database_url):
    """authsvc keys list | rotate | retire work against the database."""
    env = {**os.environ, "AUTHSVC_KEY_ENCRYPTION_KEY":
           base64.urlsafe_b64encode(os.urandom(32)).decode()}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "authsvc", *args, "--database-url",
                               database_url], capture_output=True, text=True, env=env,
                              timeout=60, check=False)

    first = run("keys", "list")
    rotated = run("keys", "rotate", "--publish-ahead", "0")
    listing = run("keys", "list")
    refused = run("keys", "retire", rotated.stdout.strip())
    events = run("events", "--kind", "key")

    assert first.returncode == 0 and first.stdout.splitlines()[1].split()[2] == "signing"
    assert rotated.returncode == 0
    states = {line.split()[0]: line.split()[2] for line in listing.stdout.splitlines()[1:]}
    assert states == {first.stdout.splitlines()[1].split()[0]: "retired",
                      rotated.stdout.strip(): "signing"}
    assert refused.returncode == 2 and "rotate" in refused.stderr
    assert [json.loads(line)["kind"] for line in events.stdout.splitlines()] == [
        "key.rotated", "key.created"]
