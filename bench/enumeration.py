"""Can the time of an answer tell which accounts exist? (A measurement, not a test:
the test, ``tests/attacks/test_enumeration.py``, proves by counting that both kinds
of request do the same work; this shows what an attacker with a stopwatch sees.)

``python -m bench.enumeration [--accounts 30] [--tries 5]`` starts ``authsvc serve``
(one worker, sign-up in ``verify`` mode, the production argon2 profile, no mail
channel, so messages wait in the outbox and no delivery runs meanwhile) on an
embedded PostgreSQL with ``--accounts`` accounts (``authsvc users add``) and twice
as many sign-ups (unverified), then, as the attacker of the "forgot password"
finding did:

- RequestPasswordReset: each existing and each unknown address ``--tries`` times
  (5: what one address may be sent before the per-identifier throttle), the fastest
  answer of each address kept;
- ResendVerification: the same, unverified accounts against unknown addresses (one
  try fewer: the sign-up spent one of the five sends);
- SignUp: once per address (a new address is taken after its first sign-up), taken
  against new;
- SignIn: a wrong password for each existing address against unknown addresses,
  ``--tries`` times each (the sign-in tarpit's free attempts are raised out of
  reach, as in the main benchmark; the reservation statement still runs);
- SignIn of imported users, still on their old system's hash (``authsvc users
  import``): bcrypt at cost 10 (GoTrue's), and PBKDF2-SHA512 at 210,000
  iterations (Keycloak's default), against unknown addresses. Twice as many
  bcrypt users are imported as there are of each other kind, so bcrypt-10 is the
  most common stored hash and the dummy for unknown users is calibrated on it
  (SECURITY.md, "Imported password hashes"): imported bcrypt users should answer
  like unknown ones, the PBKDF2 minority slower, the natives faster.

Existing and unknown addresses alternate (the order flipping each round), so a drift
in the machine's load hits both alike. Reported per RPC: the median of the kept
times for each kind, their ratio (existing ÷ unknown; 1.00 = alike) and the AUC
(the chance that a random existing address's time exceeds a random unknown one's;
0.50 = no information, 1.00 = a perfect classifier), on stdout and in
``bench/results/enumeration-latest.json``. Nothing is asserted: on a busy machine
the spread is wide, which is why the test counts instead.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import bcrypt
import grpc

from authsvc.v1 import auth_pb2, auth_pb2_grpc

from .seed import PASSWORD
from .service import ROOT, Service, add_user, embedded_database, running

PORT = 50_571
ENV = {"AUTHSVC_SIGNUP": "verify", "AUTHSVC_ARGON2_PROFILE": "owasp",
       "AUTHSVC_METRICS_LISTEN": "off",
       **{f"AUTHSVC_THROTTLE_{counter}_FREE": "1000000"
          for counter in ("IDENTIFIER", "ADDRESS", "PAIR")}}
OTHER_PASSWORD = "another passphrase for 17"  # noqa: S105 (the benchmark's sign-ups')
Call = Callable[[str], Awaitable[object]]


def main() -> None:
    args = _parser().parse_args()
    load_before = os.getloadavg()
    with embedded_database() as (data_dir, _url):
        for i in range(args.accounts):
            add_user(data_dir, f"user{i}@example.com", PASSWORD, ENV)
        _import_users(data_dir, args.accounts)
        with running(Service(data_dir, args.port, 1, ENV)) as service:
            results = asyncio.run(_measure(service.target, args.accounts, args.tries))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                            capture_output=True, check=False).stdout.strip()
    results["commit"] = commit or None
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_before": load_before, "load_after": os.getloadavg()}
    out = ROOT / "bench" / "results" / "enumeration-latest.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(_table(results))
    print(f"\nwritten to {out.relative_to(ROOT)}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.enumeration",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=30,
                        help="existing accounts, and unknown addresses, per RPC (30)")
    parser.add_argument("--tries", type=int, default=5, choices=range(1, 6),
                        help="requests per address for reset and resend; the fastest counts")
    parser.add_argument("--port", type=int, default=PORT)
    return parser


async def _measure(target: str, accounts: int, tries: int) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = auth_pb2_grpc.AuthStub(channel)

        async def reset(email: str) -> object:
            return await stub.RequestPasswordReset(
                auth_pb2.RequestPasswordResetRequest(email=email))

        async def resend(email: str) -> object:
            return await stub.ResendVerification(
                auth_pb2.ResendVerificationRequest(email=email))

        async def sign_up(email: str, password: str = OTHER_PASSWORD) -> object:
            return await stub.SignUp(auth_pb2.SignUpRequest(email=email, password=password))

        async def sign_in(email: str) -> object:
            try:
                return await stub.SignIn(auth_pb2.SignInRequest(email=email,
                                                                password=OTHER_PASSWORD))
            except grpc.aio.AioRpcError as refused:
                if refused.code() != grpc.StatusCode.UNAUTHENTICATED:
                    raise
                return refused

        for i in range(accounts):  # each spends one of its address's five sends
            await sign_up(f"unverified{i}@example.com", PASSWORD)
            await sign_up(f"taken{i}@example.com", PASSWORD)
        for warm in range(3):  # connections, statement caches, the dummy hash
            await reset(f"warm{warm}@example.com")
            await resend(f"warm{warm}@example.com")
            await sign_up(f"warm{warm}@example.com")
            await sign_in(f"warm{warm}@example.com")
        existing = [f"user{i}@example.com" for i in range(accounts)]
        return {"accounts": accounts, "tries": tries, "rpcs": {
            "RequestPasswordReset": await _compare(
                reset, existing, [f"nobody{i}@example.com" for i in range(accounts)], tries),
            "ResendVerification": await _compare(
                resend, [f"unverified{i}@example.com" for i in range(accounts)],
                [f"stranger{i}@example.com" for i in range(accounts)], max(1, tries - 1)),
            "SignUp": await _compare(
                sign_up, [f"taken{i}@example.com" for i in range(accounts)],
                [f"newcomer{i}@example.com" for i in range(accounts)], 1),
            "SignIn": await _compare(
                sign_in, existing, [f"nobody{i}@example.com" for i in range(accounts)],
                tries),
            "SignIn, imported bcrypt": await _compare(
                sign_in, [f"bcrypt{i}@example.com" for i in range(accounts)],
                [f"absent{i}@example.com" for i in range(accounts)], tries),
            "SignIn, imported PBKDF2": await _compare(
                sign_in, [f"pbkdf2{i}@example.com" for i in range(accounts)],
                [f"missing{i}@example.com" for i in range(accounts)], tries),
        }}


def _import_users(data_dir: Path, accounts: int) -> None:
    """``2 * accounts`` users on bcrypt and ``accounts`` on PBKDF2-SHA512, imported."""
    lines = [{"external_id": f"bench:bcrypt{i}", "email": f"bcrypt{i}@example.com",
              "password": {"scheme": "bcrypt", "hash": bcrypt.hashpw(
                  PASSWORD.encode(), bcrypt.gensalt(10)).decode()}}
             for i in range(accounts, 2 * accounts)]
    for i in range(accounts):
        salt = os.urandom(16)
        lines.append({"external_id": f"bench:bcrypt{i}", "email": f"bcrypt{i}@example.com",
                      "password": {"scheme": "bcrypt", "hash": bcrypt.hashpw(
                          PASSWORD.encode(), bcrypt.gensalt(10)).decode()}})
        lines.append({"external_id": f"bench:pbkdf2{i}", "email": f"pbkdf2{i}@example.com",
                      "password": {"scheme": "pbkdf2", "digest": "sha512",
                                   "iterations": 210_000,
                                   "salt": base64.b64encode(salt).decode(),
                                   "hash": base64.b64encode(hashlib.pbkdf2_hmac(
                                       "sha512", PASSWORD.encode(), salt, 210_000)).decode()}})
    path = data_dir / "imported.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    subprocess.run([sys.executable, "-m", "authsvc", "users", "import", str(path),
                    "--data-dir", str(data_dir)], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, **ENV}, cwd=ROOT)


async def _compare(call: Call, existing: list[str], unknown: list[str],
                   tries: int) -> dict[str, Any]:
    """The fastest of ``tries`` answers per address, existing and unknown alternating."""
    fastest: dict[str, list[float]] = {"existing": [], "unknown": []}
    for i, pair in enumerate(zip(existing, unknown, strict=True)):
        order = (("existing", pair[0]), ("unknown", pair[1]))
        times: dict[str, list[float]] = {"existing": [], "unknown": []}
        for attempt in range(tries):
            for kind, address in order if (i + attempt) % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                await call(address)
                times[kind].append(time.perf_counter() - started)
        for kind, taken in times.items():
            fastest[kind].append(min(taken))
    medians = {kind: statistics.median(values) for kind, values in fastest.items()}
    return {"median_ms": {kind: round(m * 1000, 3) for kind, m in medians.items()},
            "ratio": round(medians["existing"] / medians["unknown"], 3),
            "auc": round(_auc(fastest["existing"], fastest["unknown"]), 3)}


def _auc(positive: list[float], negative: list[float]) -> float:
    """Mann-Whitney: the chance that a random ``positive`` exceeds a random ``negative``
    (ties count half)."""
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0
               for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def _table(results: dict[str, Any]) -> str:
    lines = [f"{'RPC':<24} {'existing ms':>12} {'unknown ms':>11} {'ratio':>6} {'AUC':>5}"]
    for rpc, row in results["rpcs"].items():
        lines.append(f"{rpc:<24} {row['median_ms']['existing']:>12.3f}"
                     f" {row['median_ms']['unknown']:>11.3f} {row['ratio']:>6.2f}"
                     f" {row['auc']:>5.2f}")
    load = results["machine"]
    lines.append(f"(fastest of {results['tries']} per address, {results['accounts']} "
                 f"addresses each; load {load['load_before'][0]:.1f} before, "
                 f"{load['load_after'][0]:.1f} after)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

