"""The HTTP cases of the benchmark, through the gateway in front of a running server.

Two gateways of this checkout, both pointed at the server: ``edge`` with the
watch account (it verifies tokens itself) and ``forwarding`` without (it
forwards every Validate to authsvc). The edge gateway is started first, with
the server, and is the one counted in the process memory; the forwarding one
is started for its case only. Every case is the same vegeta attack (same
workers, warm-up and duration) on one request:

- ``forwarded_validate``: ``POST /v1/auth/validate`` to the forwarding gateway,
  to set beside gRPC Validate (ghz) of the same token;
- ``healthz``: the edge gateway's own ``GET /healthz``, its ceiling;
- ``edge_validate``: ``POST /v1/auth/validate`` to the edge gateway;
- ``sign_in``: ``POST /v1/auth/signin`` to the edge gateway (a password
  sign-in, to set beside raw argon2 as gRPC SignIn is).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import gateway, vegeta
from .service import Service, process_cpu_seconds


class Gateways:
    """The two gateways in front of ``service``, stopped by ``close``."""

    def __init__(self, binary: Path, service: Service, password_file: Path,
                 access_token_ttl_s: int) -> None:
        self._binary = binary
        self._service = service
        self._stack = contextlib.ExitStack()
        self.edge = self._start(gateway.edge_flags(password_file, access_token_ttl_s))
        self.forwarding: gateway.Gateway | None = None

    def _start(self, flags: list[str]) -> gateway.Gateway:
        return self._stack.enter_context(
            gateway.running(gateway.Gateway(self._binary, self._service.target, flags)))

    def cases(self, client: vegeta.Client, token: str,
              sign_in: Mapping[str, str]) -> dict[str, Any]:
        self.forwarding = self._start(gateway.FORWARDING)
        edge, forwarding = self.edge, self.forwarding
        cpu = {"workers": self._service.cpu_seconds,
               "gateway": lambda: process_cpu_seconds(edge.pid),
               "forwarding_gateway": lambda: process_cpu_seconds(forwarding.pid)}
        validate = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        out = {}
        for name, gw, method, path, headers, body in (
                ("forwarded_validate", forwarding, "POST", "/v1/auth/validate", validate, b"{}"),
                ("healthz", edge, "GET", "/healthz", {}, b""),
                ("edge_validate", edge, "POST", "/v1/auth/validate", validate, b"{}"),
                ("sign_in", edge, "POST", "/v1/auth/signin",
                 {"Content-Type": "application/json"}, json.dumps(sign_in).encode())):
            result = vegeta.attack(client, vegeta.target(method, gw.url(path), headers, body),
                                   cpu)
            print(f"  {self._service.workers}w http {name}: {result['rate']:,.0f}/s "
                  f"p50 {result['p50_ms']:.1f} ms p99 {result['p99_ms']:.1f} ms "
                  f"({result['errors']} errors of {result['requests']}; "
                  f"CPU s {result['cpu_s']})", flush=True)
            out[name] = result
        return out

    def pids(self) -> tuple[dict[str, int], dict[str, int]]:
        """The counted gateway, and the others (listed, not counted)."""
        others = {"gw-fwd": self.forwarding.pid} if self.forwarding else {}
        return {"gateway": self.edge.pid}, others

    def close(self) -> None:
        self._stack.close()
