"""Validate at the edge: the gateway answering with the Go verifier, against the
gateway forwarding every call to authsvc (issue 15).

Starts ``authsvc serve`` (one worker) on an embedded PostgreSQL, and two
gateway binaries in front of it: one with a watch account (it verifies
tokens itself while its revocation feed is current) and one without (it
forwards each Validate to authsvc). The same HTTP load generator (vegeta,
pinned in scripts/bench-edge) sends the same requests to both: ``POST
/v1/auth/validate`` with one valid bearer token, at the highest rate it can,
for the same time. Reports rate, p50 and p99 of each and the ratio, on
stdout and in ``bench/results/edge-latest.{json,txt}``.

Run it with ``scripts/bench-edge`` (``--seconds``, ``--workers`` of vegeta).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from .seed import PASSWORD
from .service import ROOT, Service, add_user, embedded_database, running

VEGETA = ROOT / ".tools" / "bin" / "vegeta"
VEGETA_VERSION = "v12.13.0"  # pinned in scripts/bench-edge
ENV = {"AUTHSVC_ARGON2_PROFILE": "test-only-cheapest", "AUTHSVC_ACCESS_TOKEN_TTL": "7200"}
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="load per gateway (default 20)")
    parser.add_argument("--workers", type=int, default=32, help="vegeta workers (default 32)")
    parser.add_argument("--port", type=int, default=58051, help="authsvc's port")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, embedded_database() as (data_dir, _url):
        binary = Path(tmp) / "authsvc-gateway"
        subprocess.run(["go", "build", "-o", str(binary), "."], cwd=ROOT / "gateway", check=True)
        add_user(data_dir, "bench@example.com", PASSWORD, ENV)
        add_user(data_dir, "watch@example.com", PASSWORD, ENV, ("authsvc.revocations",))
        password = Path(tmp) / "watch-password"
        password.write_text(PASSWORD)
        env = {**ENV, "AUTHSVC_ACCESS_TOKEN_TTL": "7200"}
        with running(Service(data_dir, args.port, 1, env)) as service:
            edge = _gateway(binary, service.target, ["--watch-email", "watch@example.com",
                                                      "--watch-password-file", str(password),
                                                      "--access-token-ttl", "7200s"])
            forwarding = _gateway(binary, service.target, [])
            try:
                token = _sign_in(forwarding[1])
                results = {name: _attack(address, token, args)
                           for name, (_proc, address) in (("edge", edge),
                                                          ("forwarded", forwarding))}
            finally:
                for proc, _ in (edge, forwarding):
                    proc.terminate()
                    proc.wait(timeout=15)
    report = {"settings": {"seconds": args.seconds, "workers": args.workers,
                           "vegeta": VEGETA_VERSION, "authsvc_workers": 1,
                           "cores": os.cpu_count(), "load_before": os.getloadavg()},
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              **results,
              "ratio": round(results["edge"]["rate"] / results["forwarded"]["rate"], 2)}
    text = _table(report)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "edge-latest.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "edge-latest.txt").write_text(text + "\n")


def _gateway(binary: Path, upstream: str, flags: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([str(binary), "--listen", "127.0.0.1:0", "--upstream", upstream,
                             *flags], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if match := re.search(r"listening on http://(127\.0\.0\.1:\d+)", line):
            # keep draining stderr so the gateway never blocks on a full pipe
            subprocess.Popen(["cat"], stdin=proc.stderr, stdout=subprocess.DEVNULL)
            return proc, match.group(1)
    raise RuntimeError("the gateway did not start")


def _sign_in(address: str) -> str:
    request = urllib.request.Request(
        f"http://{address}/v1/auth/signin", method="POST",
        data=json.dumps({"email": "bench@example.com", "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (our gateway)
        return str(json.load(response)["access_token"])


def _attack(address: str, token: str, args: argparse.Namespace) -> dict[str, Any]:
    """vegeta at the highest rate its workers reach; rate, latencies, status codes."""
    target = json.dumps({"method": "POST", "url": f"http://{address}/v1/auth/validate",
                         "header": {"Authorization": [f"Bearer {token}"],
                                    "Content-Type": ["application/json"]},
                         "body": "e30="}) + "\n"  # "{}"; vegeta reads targets by line
    _vegeta(["attack", "-format=json", "-rate=0", f"-max-workers={args.workers}",
             "-duration=3s"], target)  # warm-up: connections, the verifier's cache
    raw = _vegeta(["attack", "-format=json", "-rate=0", f"-max-workers={args.workers}",
                   f"-duration={args.seconds}s"], target)
    report = json.loads(subprocess.run([str(VEGETA), "report", "-type=json"], input=raw,
                                       capture_output=True, check=True).stdout)
    return {"rate": round(report["throughput"], 1),
            "p50_ms": round(report["latencies"]["50th"] / 1e6, 2),
            "p99_ms": round(report["latencies"]["99th"] / 1e6, 2),
            "requests": report["requests"], "status_codes": report["status_codes"]}


def _vegeta(argv: list[str], stdin: str) -> bytes:
    """vegeta's results (its binary encoding)."""
    return subprocess.run([str(VEGETA), *argv], input=stdin.encode(), capture_output=True,
                          check=True).stdout


def _table(report: dict[str, Any]) -> str:
    lines = [f"POST /v1/auth/validate through the gateway, vegeta {VEGETA_VERSION}, "
             f"{report['settings']['workers']} workers, {report['settings']['seconds']} s each",
             f"{'path':<12}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}  codes"]
    for name in ("edge", "forwarded"):
        r = report[name]
        lines.append(f"{name:<12}{r['rate']:>10}{r['p50_ms']:>10}{r['p99_ms']:>10}  "
                     f"{r['status_codes']}")
    lines.append(f"edge / forwarded throughput: {report['ratio']}x")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
