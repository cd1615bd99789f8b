"""ghz, the load generator: every scenario runs it with the same settings.

Only what a scenario needs varies: the method, the request data, and how
long or how many calls. Concurrency, connections and timeouts are fixed in
``Client``. Several connections are needed for several workers at all:
SO_REUSEPORT spreads connections, not calls, over the workers.

ghz gets authsvc's API as a protoset (a ``FileDescriptorSet``) written from
the generated ``auth_pb2`` module's descriptors, not as ``auth.proto``: the
proto parser of ghz v0.93.0 predates proto3 ``optional`` fields, which
auth.proto has.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor, descriptor_pb2

from authsvc.v1 import auth_pb2

from .service import ROOT

GHZ = ROOT / ".tools" / "bin" / "ghz"
VERSION = "v0.93.0"  # pinned in scripts/bench
HEALTH_PROTO = ["--proto", str(ROOT / "bench/protos/grpc/health/v1/health.proto")]
HEALTH = "grpc.health.v1.Health/Check"
VALIDATE = "authsvc.v1.Auth/Validate"
SIGN_IN = "authsvc.v1.Auth/SignIn"
REFRESH = "authsvc.v1.Auth/Refresh"


@dataclass(frozen=True, slots=True)
class Client:
    """The ghz settings every scenario shares."""

    concurrency: int = 50
    connections: int = 10
    timeout: str = "20s"


@dataclass(frozen=True, slots=True)
class Result:
    calls: int
    errors: int
    seconds: float
    rate: float  # successful calls per second
    p50_ms: float
    p99_ms: float
    client_cpu_s: float  # ghz's own CPU time, which the server could not use
    server_cpu_s: float  # the workers' CPU time during the run

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class Run:
    """A ghz process started in the background; ``wait`` collects its result."""

    def __init__(self, client: Client, target: str, call: str, data: Any, *,
                 duration: float | None = None, total: int | None = None,
                 rps: int | None = None, cpu: Any = None) -> None:
        self._cpu = cpu  # a callable giving the server's CPU seconds so far
        self._dir = tempfile.TemporaryDirectory(prefix="bench-ghz-")
        data_file = Path(self._dir.name) / "data.json"
        data_file.write_text(json.dumps(data))
        self._out = Path(self._dir.name) / "out.json"
        api = HEALTH_PROTO if call == HEALTH else ["--protoset", _protoset()]
        argv = [str(GHZ), "--insecure", *api,
                "--call", call, "-D", str(data_file),
                "-c", str(client.concurrency), "--connections", str(client.connections),
                "-t", client.timeout, "-O", "json", "-o", str(self._out)]
        if duration is not None:  # calls still in flight at the end are not counted
            argv += ["-z", f"{duration}s", "--duration-stop", "ignore"]
        if total is not None:
            argv += ["-n", str(total)]
        if rps is not None:
            argv += ["-r", str(rps)]
        self._cpu_before = cpu() if cpu else 0.0
        self._started = time.monotonic()
        self._proc = subprocess.Popen([*argv, target], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)

    def wait(self) -> Result:
        _, status, usage = os.wait4(self._proc.pid, 0)
        self._proc.returncode = os.waitstatus_to_exitcode(status)
        server_cpu = (self._cpu() - self._cpu_before) if self._cpu else 0.0
        stderr = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
        try:
            if self._proc.returncode != 0 or not self._out.exists():
                raise RuntimeError(f"ghz failed ({self._proc.returncode}): {stderr[-1000:]}")
            report = json.loads(self._out.read_text())
        finally:
            self._dir.cleanup()
        return _result(report, usage.ru_utime + usage.ru_stime, server_cpu)


@functools.cache
def _protoset() -> str:
    """auth.proto and everything it imports, dependencies first, in a file that
    lives as long as this process."""
    files: list[descriptor.FileDescriptor] = []

    def add(file: descriptor.FileDescriptor) -> None:
        if file not in files:
            for dependency in file.dependencies:
                add(dependency)
            files.append(file)

    add(auth_pb2.DESCRIPTOR)
    fds = descriptor_pb2.FileDescriptorSet()
    for file in files:
        file.CopyToProto(fds.file.add())
    handle, path = tempfile.mkstemp(prefix="bench-auth-", suffix=".protoset")
    with os.fdopen(handle, "wb") as out:
        out.write(fds.SerializeToString())
    atexit.register(os.unlink, path)
    return path


def run(client: Client, target: str, call: str, data: Any, **kwargs: Any) -> Result:
    return Run(client, target, call, data, **kwargs).wait()


def _result(report: dict[str, Any], client_cpu: float, server_cpu: float) -> Result:
    codes = report.get("statusCodeDistribution") or {}
    ok = int(codes.get("OK", 0))
    calls = int(report["count"])
    seconds = report["total"] / 1e9
    latencies = {int(p["percentage"]): p["latency"] / 1e6
                 for p in report.get("latencyDistribution") or []}
    return Result(calls=calls, errors=calls - ok, seconds=seconds,
                  rate=ok / seconds if seconds else 0.0,
                  p50_ms=latencies.get(50, float("nan")), p99_ms=latencies.get(99, float("nan")),
                  client_cpu_s=client_cpu, server_cpu_s=server_cpu)


def errors(report: Result, allowed: float = 0.0) -> None:
    """Fail loudly when a scenario's calls fail: a fast error is no result."""
    if report.errors > allowed * report.calls:
        raise RuntimeError(f"{report.errors} of {report.calls} calls failed")


def sequence(tokens: Sequence[str], field: str) -> list[dict[str, str]]:
    """ghz sends the messages of an array round-robin."""
    return [{field: t} for t in tokens]
