"""vegeta, the HTTP load generator: every HTTP case runs it with the same settings.

At the highest rate its workers reach (``-rate=0 -max-workers=N``): each
worker sends its next request when the last one is answered, like ghz's
``-c``. Only the request varies between cases; the workers, the warm-up and
the duration are fixed in ``Client``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .service import ROOT

VEGETA = ROOT / ".tools" / "bin" / "vegeta"
VERSION = "v12.13.0"  # pinned in scripts/bench and scripts/bench-edge


@dataclass(frozen=True, slots=True)
class Client:
    """The vegeta settings every HTTP case shares."""

    workers: int = 32
    duration: float = 10.0
    warmup: float = 2.0
    timeout: str = "20s"


def target(method: str, url: str, headers: Mapping[str, str] | None = None,
           body: bytes = b"") -> str:
    """One request in vegeta's JSON target format (read by line)."""
    return json.dumps({"method": method, "url": url,
                       "header": {k: [v] for k, v in (headers or {}).items()},
                       "body": base64.b64encode(body).decode()}) + "\n"


def attack(client: Client, request: str,
           cpu: Mapping[str, Callable[[], float]] | None = None) -> dict[str, Any]:
    """A warm-up (connections, caches), then the measured attack: successful
    requests per second, latencies, status codes, and the CPU seconds each
    process in ``cpu`` used meanwhile (``vegeta`` is its own)."""
    if client.warmup > 0:
        _attack(client, request, client.warmup)
    before = {name: read() for name, read in (cpu or {}).items()}
    results, vegeta_cpu, seconds = _attack(client, request, client.duration)
    used = {name: round(read() - before[name], 3) for name, read in (cpu or {}).items()}
    report = json.loads(subprocess.run([str(VEGETA), "report", "-type=json"], input=results,
                                       capture_output=True, check=True).stdout)
    codes = {str(k): int(v) for k, v in (report.get("status_codes") or {}).items()}
    ok = round(report["requests"] * report["success"])
    return {"rate": round(report["throughput"], 1),
            "p50_ms": round(report["latencies"]["50th"] / 1e6, 2),
            "p99_ms": round(report["latencies"]["99th"] / 1e6, 2),
            "requests": report["requests"], "errors": report["requests"] - ok,
            "status_codes": codes, "seconds": round(seconds, 2),
            "cpu_s": {**used, "vegeta": round(vegeta_cpu, 3)}}


def _attack(client: Client, request: str, seconds: float) -> tuple[bytes, float, float]:
    """vegeta's results (its binary encoding), its CPU seconds, the wall time."""
    argv = [str(VEGETA), "attack", "-format=json", "-rate=0",
            f"-max-workers={client.workers}", f"-duration={seconds}s",
            f"-timeout={client.timeout}"]
    with tempfile.TemporaryDirectory(prefix="bench-vegeta-") as tmp:
        stdin, stdout = Path(tmp) / "targets", Path(tmp) / "results"
        stdin.write_text(request)
        with stdin.open("rb") as given, stdout.open("wb") as out:
            started = time.monotonic()
            proc = subprocess.Popen(argv, stdin=given, stdout=out, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.returncode != 0:
            raise RuntimeError(f"vegeta failed ({proc.returncode}): {stderr[-1000:]}")
        return stdout.read_bytes(), usage.ru_utime + usage.ru_stime, wall
