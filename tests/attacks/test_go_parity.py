"""The Go verifier refuses the forged-token catalogue exactly as authsvc does.

One corpus file, two languages: every token of the catalogue
(``test_verifier_parity.CATALOGUE``, built from ``catalogue.py``) and a
revoked session's token are offered to authsvc's Validate, and each token
with Validate's outcome (``OK <session id>`` or the ErrorInfo reason) is
written to one JSON file, with the server's address, token rules and
(fake) clock. The Python LocalVerifier is checked against that file here;
the Go verifier (gateway/verify) against the same file by ``go test -tags
corpus -run TestAttackCorpus``, following the same server.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from authsvc.v1 import auth_pb2
from authsvc.verifiers import LocalVerifier

from ..conftest import WATCHER
from ..helpers import PASSWORD
from ..system.test_gateway import _require_go
from .kit import Kit
from .test_verifier_parity import CATALOGUE, local, revoked, validate, verify_locally

pytestmark = pytest.mark.go
ROOT = Path(__file__).resolve().parents[2]
__all__ = ["local", "revoked"]  # fixtures shared with test_verifier_parity


def write_corpus(kit: Kit, revoked_token: str, path: Path) -> list[dict[str, str]]:
    """Each token with Validate's outcome, and what a verifier needs to follow the kit."""
    cases = [{"name": name, "token": build(kit)} for name, build in CATALOGUE.items()]
    cases.append({"name": "revoked-session", "token": revoked_token})
    for case in cases:
        case["outcome"] = validate(kit, case["token"])
    settings = kit.service.settings
    corpus: dict[str, Any] = {
        "upstream": f"127.0.0.1:{kit.service.port}",
        "watch_token": kit.stub.SignIn(auth_pb2.SignInRequest(
            email=WATCHER, password=PASSWORD)).access_token,  # the local fixture's account
        "now": kit.service.clock(), "issuer": settings.issuer, "audience": settings.audience,
        "leeway": settings.clock_leeway, "max_token_lifetime": settings.access_token_ttl,
        "cases": cases,
    }
    path.write_text(json.dumps(corpus, indent=1))
    return cases


async def test_python_and_go_verifiers_give_the_corpus_validates_outcomes(
        kit: Kit, local: LocalVerifier, revoked: str, tmp_path: Path) -> None:
    """Every corpus token gets Validate's outcome from the LocalVerifier and from the Go
    verifier, read from the same file."""
    go = _require_go()
    path = tmp_path / "corpus.json"
    write_corpus(kit, revoked, path)

    from_file = json.loads(path.read_text())["cases"]
    python = {c["name"]: await verify_locally(local, c["token"]) for c in from_file}
    result = await asyncio.to_thread(
        subprocess.run,
        [go, "test", "-count=1", "-v", "-tags", "corpus", "-run", "TestAttackCorpus", "./verify/"],
        cwd=ROOT / "gateway", capture_output=True, text=True, timeout=600,
        env={**os.environ, "AUTHSVC_TEST_CORPUS": str(path)})

    assert python == {c["name"]: c["outcome"] for c in from_file}
    assert {c["outcome"].split()[0] for c in from_file} == {
        "OK", "TOKEN_EXPIRED", "TOKEN_INVALID", "TOKEN_MISSING", "TOKEN_REVOKED"}
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    assert f"{len(from_file)} corpus tokens, every one answered as Validate" in result.stdout
