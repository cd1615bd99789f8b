"""Measure the interceptor (a measurement, not a test; numbers go in the README).

In one run, against a real authsvc (its own process, embedded PostgreSQL):

- calls/s of the example service (examples/whoami.py, its own process) with
  no interceptor, with the local verifier, with the remote verifier
  (positive cache on, one token: the best case) and with the remote
  verifier with no cache (every call asks Validate: the worst case), and the
  example process's CPU time per call;
- the time from sending Revoke to the first refused call, p50/p99, on the
  local verifier, polling with back-to-back calls.

Usage: scripts/bench-interceptor [--seconds 5] [--concurrency 64] [--rounds 2]
                                 [--revocations 100]
(or ``python -m bench.interceptor`` from the repository root).

The load generator is Python (grpc.aio) in this process: on a small machine
it competes with the server for cores, so compare the ratios, run it more
than once, and read the CPU time per call, which is the steadier number.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time

import grpc

from authsvc.v1 import auth_pb2, auth_pb2_grpc
from examples.whoami import SERVICE, serving

from . import seed
from .seed import PASSWORD
from .service import ROOT, Service, add_user, embedded_database, process_cpu_seconds, running

EMAIL = "bench@example.com"
MODES = ("none", "local", "remote", "remote-nocache")
WATCHER = "watcher@example.com"  # the example service's own account, for the feed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the example service, in its own process ----------------------------------
async def serve_example(mode: str, authsvc: str, port: int) -> None:
    from authsvc.client import SessionCredentials
    from authsvc.verifiers import LocalVerifier, RemoteVerifier

    verifier: LocalVerifier | RemoteVerifier | None = None
    if mode == "local":
        # The revocation feed needs a service account with scope authsvc.revocations.
        credentials = SessionCredentials.sign_in(authsvc, email=WATCHER, password=PASSWORD)
        verifier = LocalVerifier(authsvc, access_token=credentials.access_token)
        assert await asyncio.to_thread(verifier.start), "local verifier not ready"
    elif mode.startswith("remote"):
        verifier = RemoteVerifier(authsvc, cache_size=0 if mode == "remote-nocache" else 1000)
    if verifier is None:  # the same service with nothing to read claims from
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
            "Get": grpc.unary_unary_rpc_method_handler(_anonymous)}),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()
    async with serving(verifier, f"127.0.0.1:{port}"):
        print("ready", flush=True)
        await asyncio.Event().wait()


async def _anonymous(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b"00000000-0000-4000-8000-000000000000"  # as long as a user id


# --- the load ------------------------------------------------------------------
async def load(port: int, token: str, seconds: float, concurrency: int) -> int:
    metadata = (("authorization", f"Bearer {token}"),)
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(2)]
    calls = [c.unary_unary(f"/{SERVICE}/Get") for c in channels]
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        nonlocal done
        call = calls[n % len(calls)]
        while time.perf_counter() < stop:
            await call(b"", metadata=metadata)
            done += 1

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    for channel in channels:
        await channel.close()
    return done


async def revocation_latencies(authsvc: str, port: int, count: int) -> list[float]:
    sessions = await seed.sign_in(authsvc, EMAIL, PASSWORD, count)
    latencies = []
    async with grpc.aio.insecure_channel(authsvc) as auth_channel, \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = auth_pb2_grpc.AuthStub(auth_channel)
        get = channel.unary_unary(f"/{SERVICE}/Get")
        for session in sessions:
            metadata = (("authorization", f"Bearer {session.access_token}"),)
            await get(b"", metadata=metadata)
            sent = asyncio.Event()
            refused_at: list[float] = []

            async def poll(metadata: tuple[tuple[str, str]] = metadata,
                           sent: asyncio.Event = sent, refused_at: list[float] = refused_at,
                           ) -> None:
                while True:
                    try:
                        await get(b"", metadata=metadata)
                    except grpc.RpcError:
                        if sent.is_set():
                            refused_at.append(time.perf_counter())
                            return
                        raise

            poller = asyncio.create_task(poll())
            await asyncio.sleep(0.005)
            started = time.perf_counter()
            sent.set()
            await stub.Revoke(auth_pb2.RevokeRequest(token=session.refresh_token))
            await asyncio.wait_for(poller, 5)
            latencies.append(refused_at[0] - started)
    return latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# --- orchestration ---------------------------------------------------------------
def main() -> int:
    args = _parser().parse_args()
    if args.serve_example:
        mode, target, port = args.serve_example
        asyncio.run(serve_example(mode, target, int(port)))
        return 0

    # One worker, the cheap argon2 profile (SignIn is not what is measured), and
    # the metrics endpoint on a free port rather than the fixed default.
    env = {"AUTHSVC_ARGON2_PROFILE": "test-only-cheapest",
           "AUTHSVC_METRICS_LISTEN": f"127.0.0.1:{free_port()}"}
    with embedded_database() as (data_dir, _):
        add_user(data_dir, EMAIL, PASSWORD, env)
        add_user(data_dir, WATCHER, PASSWORD, env, scopes=("authsvc.revocations",))
        with running(Service(data_dir, free_port(), 1, env)) as service:
            results, latencies = _measure(args, service.target)
    _report(results, latencies, args)
    return 0


def _measure(args: argparse.Namespace, authsvc: str,
             ) -> tuple[dict[str, list[tuple[float, float]]], list[float]]:
    """(calls/s, example CPU µs/call) per mode and round; the revocation latencies."""
    results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    latencies: list[float] = []
    for round_ in range(args.rounds):
        for mode in MODES:
            port = free_port()
            example = subprocess.Popen(
                [sys.executable, "-m", "bench.interceptor", "--serve-example", mode, authsvc,
                 str(port)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
            try:
                assert example.stdout is not None and example.stdout.readline() == "ready\n"
                token = asyncio.run(_token(authsvc))
                asyncio.run(load(port, token, 1.0, args.concurrency))  # warm-up
                cpu = process_cpu_seconds(example.pid)
                calls = asyncio.run(load(port, token, args.seconds, args.concurrency))
                cpu = process_cpu_seconds(example.pid) - cpu
                results[mode].append((calls / args.seconds, cpu / calls * 1e6))
                if mode == "local" and round_ == 0 and args.revocations:
                    latencies = asyncio.run(
                        revocation_latencies(authsvc, port, args.revocations))
            finally:
                example.terminate()
                example.wait()
    return results, latencies


async def _token(target: str) -> str:
    sessions = await seed.sign_in(target, EMAIL, PASSWORD, 1)
    return sessions[0].access_token


def _report(results: dict[str, list[tuple[float, float]]], latencies: list[float],
            args: argparse.Namespace) -> None:
    base = statistics.median(rate for rate, _ in results["none"])
    print(f"cores: {os.cpu_count()}, {args.rounds} rounds of {args.seconds:g} s, "
          f"{args.concurrency} calls in flight; medians (each round)")
    print(f"{'mode':<16}{'calls/s':>10}{'vs none':>9}{'CPU µs/call':>13}   rounds (calls/s)")
    for mode, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        each = ", ".join(f"{r:.0f}" for r, _ in runs)
        print(f"{mode:<16}{rate:>10.0f}{rate / base:>9.0%}{cpu:>13.0f}   {each}")
    if latencies:
        ms = [1000 * x for x in latencies]
        print(f"Revoke → first refused call (local verifier, n={len(ms)}): "
              f"p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms, "
              f"max {max(ms):.1f} ms")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/bench-interceptor",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--revocations", type=int, default=100)
    p.add_argument("--serve-example", nargs=3, metavar=("MODE", "AUTHSVC", "PORT"),
                   help=argparse.SUPPRESS)
    return p


if __name__ == "__main__":
    sys.exit(main())
