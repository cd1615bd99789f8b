"""The Go example service (examples/go-whoami), guarded by gateway/verify with a
TokenSource as its own account, against a real authsvc; and the Go service guide's
section, which shows the example's code."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from authsvc.v1 import auth_pb2
from tests.helpers import PASSWORD, bearer, sign_in
from tests.system.test_gateway import _require_go

pytestmark = pytest.mark.go
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "go-whoami"
ACCOUNT = "whoami@example.com"
PATIENCE = 60.0  # bound of every wait on a loaded machine


def readme_region() -> str:
    """The lines of the example between its README markers, one tab dedented."""
    source = (EXAMPLE / "main.go").read_text()
    region = source.split("// README: begin\n", 1)[1].split("\t// README: end", 1)[0]
    return "".join(line.removeprefix("\t") for line in region.splitlines(keepends=True))


def test_the_go_service_guide_shows_the_example_verbatim() -> None:
    """The first go block of the guide "Protect a Go service" is the example's marked
    region."""
    guide = (ROOT / "docs" / "guides" / "go-service.md").read_text()
    block = re.search(r"```go\n(.*?)```", guide, re.S)

    assert block is not None
    assert block.group(1) == readme_region()


@pytest.fixture(scope="session")
def whoami_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/go-whoami built with ``go build``."""
    go = _require_go()
    out = tmp_path_factory.mktemp("go-whoami") / "go-whoami"
    subprocess.run([go, "build", "-o", str(out), "."], cwd=EXAMPLE, check=True, timeout=600)
    return out


@dataclass
class Running:
    process: asyncio.subprocess.Process
    address: str
    log: list[str]

    async def wait_for(self, pattern: str, after: int = 0) -> int:
        """Reads the log until a line from index ``after`` on matches; returns its index."""
        deadline = time.monotonic() + PATIENCE
        while True:
            for i in range(after, len(self.log)):
                if re.search(pattern, self.log[i]):
                    return i
            assert self.process.stderr is not None
            line = await asyncio.wait_for(self.process.stderr.readline(),
                                          max(0.1, deadline - time.monotonic()))
            assert line, "go-whoami exited:\n" + "".join(self.log)
            self.log.append(line.decode())


@pytest.fixture
async def whoami(whoami_binary: Path, server: int, app) -> AsyncIterator[Running]:
    """The example on a free port, signed in to the authsvc under test as ``ACCOUNT``
    (scope authsvc.revocations)."""
    await app.accounts.add("email", ACCOUNT, PASSWORD, ("authsvc.revocations",))
    process = await asyncio.create_subprocess_exec(
        str(whoami_binary), f"127.0.0.1:{server}", "127.0.0.1:0",
        env={"WHOAMI_EMAIL": ACCOUNT, "WHOAMI_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"},
        stderr=asyncio.subprocess.PIPE)
    running = Running(process, "", [])
    try:
        line = await running.wait_for(r"listening on http://")
        running.address = re.search(r"http://(\S+?),", running.log[line]).group(1)  # type: ignore[union-attr]
        yield running
    finally:
        process.terminate()
        await process.wait()


@dataclass
class Answer:
    status: int
    body: str
    challenge: str | None


def _get(url: str, token: str | None) -> Answer:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    try:
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 (http:// only)
        with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310
            return Answer(r.status, r.read().decode(), None)
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read().decode(), error.headers.get("WWW-Authenticate"))


async def get(whoami: Running, path: str, token: str | None = None) -> Answer:
    return await asyncio.to_thread(_get, f"http://{whoami.address}{path}", token)


async def refused_within(whoami: Running, token: str) -> Answer:
    """Polls /whoami with ``token`` until it is refused (within PATIENCE)."""
    deadline = time.monotonic() + PATIENCE
    while (answer := await get(whoami, "/whoami", token)).status == 200:
        assert time.monotonic() < deadline, "the revoked token is still accepted"
        await asyncio.sleep(0.01)
    return answer


async def test_the_go_service_answers_the_verified_caller(whoami, stub, user):
    """/whoami answers a valid token's user id; without a token 401 with the bare
    challenge; /admin without scope example.admin 403 insufficient_scope."""
    signed_in = await sign_in(stub)

    ok = await get(whoami, "/whoami", signed_in.access_token)
    missing = await get(whoami, "/whoami")
    admin = await get(whoami, "/admin", signed_in.access_token)

    assert (ok.status, ok.body) == (200, user + "\n")
    assert (missing.status, missing.challenge) == (401, 'Bearer realm="authsvc"')
    assert admin.status == 403
    assert admin.challenge is not None and 'error="insufficient_scope"' in admin.challenge


async def test_the_go_service_refuses_a_revoked_session(whoami, stub, user):
    """After Revoke the example refuses the session's token: 401, invalid_token."""
    signed_in = await sign_in(stub)
    assert (await get(whoami, "/whoami", signed_in.access_token)).status == 200

    await stub.Revoke(auth_pb2.RevokeRequest(token=signed_in.refresh_token))
    refused = await refused_within(whoami, signed_in.access_token)

    assert refused.status == 401
    assert refused.challenge == ('Bearer realm="authsvc", error="invalid_token", '
                                 'error_description="The access token\'s session was revoked"')


async def test_the_go_service_signs_in_again_when_its_own_session_is_revoked(whoami, stub,
                                                                             user):
    """Every session of the example's account revoked, its TokenSource signs in again and
    the example goes on following revocations: a user's revoked token is then refused."""
    admin_of_account = await sign_in(stub, ACCOUNT)
    first = await whoami.wait_for(r"the service account signed in")

    await stub.Revoke(auth_pb2.RevokeRequest(all_sessions=True),
                      metadata=bearer(admin_of_account.access_token))
    ended = await whoami.wait_for(r"session ended; signing in again", first + 1)
    await whoami.wait_for(r"the service account signed in", ended + 1)
    signed_in = await sign_in(stub)
    await stub.Revoke(auth_pb2.RevokeRequest(token=signed_in.refresh_token))
    refused = await refused_within(whoami, signed_in.access_token)

    assert refused.status == 401
    assert refused.challenge is not None and "revoked" in refused.challenge
