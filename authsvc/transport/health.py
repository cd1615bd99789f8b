"""grpc.health.v1 for one worker, with a drain that ends every Watch stream.

grpc's own ``health.aio.HealthServicer`` keeps Watch streams open until the
client hangs up, and ``server.stop(grace)`` waits for every open call: one
client watching health (gRPC client-side health checking does) would hold
every shutdown for the whole grace period. Here ``drain()`` sends
NOT_SERVING to every watcher and then ends its stream.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_Response = health_pb2.HealthCheckResponse


class HealthServicer(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self._status: dict[str, int] = {"": _Response.SERVING}
        self._changed = asyncio.Condition()
        self._draining = False

    async def Check(self, request: health_pb2.HealthCheckRequest,
                    context: grpc.aio.ServicerContext) -> Any:
        status = self._status.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return _Response(status=status)

    async def Watch(self, request: health_pb2.HealthCheckRequest,
                    context: grpc.aio.ServicerContext) -> None:
        last: int | None = None
        while True:
            async with self._changed:
                await self._changed.wait_for(functools.partial(
                    self._news, request.service, last))
                status, draining = self._current(request.service), self._draining
            if status != last:
                await context.write(_Response(status=status))
                last = status
            if draining:
                return

    async def set(self, service: str, status: int) -> None:
        """Record a service's status and tell its watchers; ignored once draining."""
        async with self._changed:
            if not self._draining:
                self._status[service] = status
                self._changed.notify_all()

    async def drain(self) -> None:
        """NOT_SERVING for good, and every Watch stream ends after saying so."""
        async with self._changed:
            self._status = dict.fromkeys(self._status, _Response.NOT_SERVING)
            self._draining = True
            self._changed.notify_all()

    def _news(self, service: str, last: int | None) -> bool:
        return self._draining or self._current(service) != last

    def _current(self, service: str) -> int:
        return int(self._status.get(service, _Response.SERVICE_UNKNOWN))
