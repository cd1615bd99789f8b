"""Where a worker's time goes during one scenario: py-spy samples, read as shares.

``sampled(pid, out)`` records the process with py-spy (``raw`` format: one line
per distinct stack and its count) for as long as the block runs; ``shares``
then sorts the samples: the hash threads' argon2 and the other threads
(grpc's completion-queue poller, the metrics server) apart, then each
sample of the loop's thread by the first of ``SHARES`` its frames above
``_run_once`` pass. py-spy (``pip install py-spy``, in the bench extra) needs
to be allowed to read the process (root, or ptrace allowed).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

RATE = 1000  # samples per second
NATIVE: list[str] = ["--native"] if os.environ.get("BENCH_NATIVE") else []

WAITING = "waiting in epoll"
SHARES: tuple[tuple[str, Callable[[list[str]], bool]], ...] = (
    ("JWT signing (pyjwt, cryptography)",
     lambda fr: any("jwt/" in f or "cryptography" in f for f in fr)),
    ("access log and metrics",
     lambda fr: any("logging/" in f or "observability.py" in f or "prometheus" in f
                    for f in fr)),
    ("asyncpg (the statement, the pool, the socket write)",
     lambda fr: any("asyncpg" in f for f in fr)),
    ("authsvc's own Python (handler, interceptors, domain)",
     lambda fr: any("authsvc/" in f for f in fr)),
    (WAITING, lambda fr: "selectors" in fr[-1]),
    ("C and Cython run by the event loop (grpc aio's call handling, protobuf, "
     "asyncpg's protocol)", lambda fr: len(fr) == 1 and fr[0].startswith("Handle._run")),
)
HASHING = "argon2 on the hash threads"
OTHER_THREADS = "other threads (grpc's poller, metrics server)"
ASYNCIO = "asyncio itself (loop, tasks, futures, transports)"


def executable() -> str:
    """py-spy beside this interpreter (the bench venv's), else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("bench: --profile needs py-spy (pip install py-spy; the bench extra "
                         "has it)")
    return found


@contextlib.contextmanager
def sampled(pid: int, out: Path, *, gil: bool = True, rate: int = RATE) -> Iterator[None]:
    """py-spy records ``pid`` into ``out`` while the block runs (``raw``; speedscope
    when ``out`` ends in ``.json``). ``gil``: only samples of a thread holding the GIL,
    so that the event loop's CPU is what is attributed, not its waits for the GIL
    (a plain profile shows those waits as socket writes and metadata parsing)."""
    fmt = "speedscope" if out.suffix == ".json" else "raw"
    spy = subprocess.Popen([executable(), "record", "--pid", str(pid), "--rate", str(rate),
                            *NATIVE, *(["--gil"] if gil else []), "--format", fmt,
                            "--output", str(out), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # py-spy attaches
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


def shares(raw: Path) -> dict[str, float]:
    """Where a py-spy ``raw`` profile's samples go, as shares (largest first)."""
    counts: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames, samples = stack.split(";"), int(n)
        total += samples
        if any("Thread._bootstrap" in f for f in frames[:3]):
            name = HASHING if any("argon2" in f for f in frames) else OTHER_THREADS
        else:
            below = [i for i, f in enumerate(frames) if "_run_once" in f]
            above = frames[below[-1] + 1:] if below else frames
            name = next((n for n, test in SHARES if above and test(above)), ASYNCIO)
        counts[name] = counts.get(name, 0) + samples
    return {name: round(c / total, 3)
            for name, c in sorted(counts.items(), key=lambda kv: -kv[1])} if total else {}


def summary(raw: Path | None, rate: int) -> dict[str, Any] | None:
    """What a command's JSON says of its profile: the file, the rate and the shares
    (None when no raw profile was recorded: none asked for, or speedscope's)."""
    if raw is None or raw.suffix == ".json":
        return None
    return {"file": str(raw), "samples_per_second": rate, "shares": shares(raw)}
