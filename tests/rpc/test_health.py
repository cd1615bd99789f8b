"""Health checking and server reflection."""

from __future__ import annotations

from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ..helpers import database_refusing_connections, eventually


async def test_health_is_serving_and_turns_not_serving_without_the_database(
        channel, app, pg_admin_url, database_url):
    """SERVING while the database answers; NOT_SERVING once it refuses connections."""
    health = health_pb2_grpc.HealthStub(channel)
    serving = await health.Check(health_pb2.HealthCheckRequest(service=""))
    async with database_refusing_connections(pg_admin_url, database_url):

        async def not_serving() -> bool:
            answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
            return bool(answer.status == health_pb2.HealthCheckResponse.NOT_SERVING)

        # The health loop checks every 2 s.
        await eventually(not_serving, 10, "health to say NOT_SERVING", interval=0.1)

    assert serving.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_every_service(channel):
    """grpcurl-style reflection lists the Auth, health and reflection services."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def one_request():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    responses = [r async for r in stub.ServerReflectionInfo(one_request())]

    names = {s.name for s in responses[0].list_services_response.service}
    assert {"authsvc.v1.Auth", "grpc.health.v1.Health"} <= names
