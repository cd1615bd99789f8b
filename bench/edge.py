"""Validate at the edge: the gateway answering with the Go verifier, against the
gateway forwarding every call to authsvc.

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
import tempfile
import time
from pathlib import Path
from typing import Any

from . import gateway, vegeta
from .seed import PASSWORD
from .service import ROOT, Service, add_user, embedded_database, running

ENV = {"AUTHSVC_ARGON2_PROFILE": "test-only-cheapest", "AUTHSVC_ACCESS_TOKEN_TTL": "7200"}
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="load per gateway (default 20)")
    parser.add_argument("--workers", type=int, default=32, help="vegeta workers (default 32)")
    parser.add_argument("--port", type=int, default=58051, help="authsvc's port")
    args = parser.parse_args()
    client = vegeta.Client(workers=args.workers, duration=args.seconds, warmup=3)
    with tempfile.TemporaryDirectory() as tmp, embedded_database() as (data_dir, _url):
        binary = gateway.build(Path(tmp))
        add_user(data_dir, "bench@example.com", PASSWORD, ENV)
        add_user(data_dir, gateway.WATCH_EMAIL, PASSWORD, ENV, gateway.WATCH_SCOPES)
        password = Path(tmp) / "watch-password"
        password.write_text(PASSWORD)
        with running(Service(data_dir, args.port, 1, ENV)) as service, \
                gateway.running(gateway.Gateway(binary, service.target,
                                                gateway.edge_flags(password, 7200))) as edge, \
                gateway.running(gateway.Gateway(binary, service.target,
                                                gateway.FORWARDING)) as forwarding:
            token = gateway.sign_in(forwarding, "bench@example.com", PASSWORD)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            results = {name: vegeta.attack(client, vegeta.target(
                           "POST", gw.url("/v1/auth/validate"), headers, b"{}"))
                       for name, gw in (("edge", edge), ("forwarded", forwarding))}
    report = {"settings": {"seconds": args.seconds, "workers": args.workers,
                           "vegeta": vegeta.VERSION, "authsvc_workers": 1,
                           "cores": os.cpu_count(), "load_before": os.getloadavg()},
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              **results,
              "ratio": round(results["edge"]["rate"] / results["forwarded"]["rate"], 2)}
    text = _table(report)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "edge-latest.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "edge-latest.txt").write_text(text + "\n")


def _table(report: dict[str, Any]) -> str:
    lines = [f"POST /v1/auth/validate through the gateway, vegeta {vegeta.VERSION}, "
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
