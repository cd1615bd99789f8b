"""The floor under every RPC: grpc.aio itself, with nothing of authsvc.

``python -m bench.floor PORT`` serves the standard health service
(``grpc_health``'s asyncio servicer) on a bare ``grpc.aio`` server, one
process, asyncio's own loop, no interceptors, options or logging, and prints
``ready`` once it listens. The benchmark measures its health Check the way it
measures authsvc's with one worker: what an empty RPC costs grpc.aio on this
machine, against what it costs in authsvc (the interceptors, the access-log
line, the metrics, the tasks beside it).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator

import grpc
from grpc_health.v1 import _async as health_async
from grpc_health.v1 import health_pb2_grpc


async def serve(port: int) -> None:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health_async.HealthServicer(), server)
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"bench.floor: cannot listen on 127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


@contextlib.contextmanager
def running(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """The bare server, started and ready; stopped when the block ends."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.floor", str(port)],
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("bench.floor: the bare grpc.aio server did not start")
        yield proc
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
