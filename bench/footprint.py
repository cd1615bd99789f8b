"""The memory of every process authsvc runs as, read from /proc.

For each process: VmRSS (``/proc/PID/status``: resident pages, shared ones
counted in full in every process that maps them) and Pss
(``/proc/PID/smaps_rollup``: shared pages split between the processes that
share them, so a sum of Pss does not count a page twice). Processes are named
by their command line, so a helper nobody expected (a multiprocessing
resource tracker, say) shows up as what it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .service import Service

MIB = 1024


def snapshot(service: Service, gateways: Mapping[str, int],
             uncounted: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Every process of ``service`` (serve and its descendants) and the named
    ``gateways``, with their sums; ``uncounted`` processes are listed, not summed."""
    serve = service.pid
    rows = [_row("serve" if pid == serve else "child", pid) for pid in service.processes()]
    rows += [_row(name, pid) for name, pid in gateways.items()]
    extra = [_row(name, pid) for name, pid in (uncounted or {}).items()]
    counted = [r for r in rows if r is not None]
    return {"processes": counted, "uncounted": [r for r in extra if r is not None],
            "rss_kib": sum(r["rss_kib"] for r in counted),
            "pss_kib": sum(r["pss_kib"] for r in counted)}


def table(title: str, snap: dict[str, Any]) -> list[str]:
    lines = [title, f"  {'process':10} {'pid':>7} {'RSS MiB':>8} {'PSS MiB':>8}  command line"]
    for r in snap["processes"]:
        lines.append(_line(r))
    lines.append(f"  {'total':10} {'':>7} {snap['rss_kib'] / MIB:8.1f} "
                 f"{snap['pss_kib'] / MIB:8.1f}  ({len(snap['processes'])} processes)")
    for r in snap["uncounted"]:
        lines.append(_line(r) + "  [not in the total]")
    return lines


def _line(r: dict[str, Any]) -> str:
    command = r["cmdline"] if len(r["cmdline"]) <= 70 else r["cmdline"][:67] + "..."
    return (f"  {r['role']:10} {r['pid']:>7} {r['rss_kib'] / MIB:8.1f} "
            f"{r['pss_kib'] / MIB:8.1f}  {command}")


def _row(role: str, pid: int) -> dict[str, Any] | None:
    """None when the process is gone by the time it is read."""
    with contextlib.suppress(OSError, KeyError):
        proc = Path(f"/proc/{pid}")
        cmdline = proc.joinpath("cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ")
        return {"role": role, "pid": pid, "cmdline": cmdline.decode(errors="replace")[:300],
                "rss_kib": _field(proc / "status", "VmRSS"),
                "pss_kib": _field(proc / "smaps_rollup", "Pss")}
    return None


def _field(path: Path, name: str) -> int:
    """A ``Name:   123 kB`` line of a /proc file, in KiB."""
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return int(value.split()[0])
    raise KeyError(f"{name} not in {path}")
