"""Requests that are not a valid message of their method: INVALID_ARGUMENT.

grpc.aio deserializes a request before any handler runs and, when protobuf
cannot parse it (corrupt wire format, a string field that is not UTF-8),
answers UNKNOWN with the parser's error text. This interceptor gives each
handler a deserializer that returns a marker instead of raising, and
answers the marker with INVALID_ARGUMENT (field ``request``) through the one
error mapping, so a client's malformed bytes are a client error like any
other and echo nothing back.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from ..errors import InvalidArgument
from .status import abort

UNDECODABLE = object()


def _refusal() -> InvalidArgument:
    return InvalidArgument("request", "is not a valid message for this method")


class DecodingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
            details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        deserialize = handler.request_deserializer

        def safe(data: bytes) -> Any:
            try:
                return deserialize(data)
            except Exception:
                return UNDECODABLE

        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if request is UNDECODABLE:
                    await abort(context, _refusal())
                return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(unary, safe,
                                                       handler.response_serializer)
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream
            if inspect.isasyncgenfunction(inner_stream):
                async def stream(request: Any, context: grpc.aio.ServicerContext,
                                 ) -> AsyncIterator[Any]:
                    if request is UNDECODABLE:
                        await abort(context, _refusal())
                    async for item in inner_stream(request, context):
                        yield item

                return grpc.unary_stream_rpc_method_handler(stream, safe,
                                                            handler.response_serializer)

            async def writing(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if request is UNDECODABLE:
                    await abort(context, _refusal())
                return await inner_stream(request, context)

            return grpc.unary_stream_rpc_method_handler(writing, safe,
                                                        handler.response_serializer)
        return handler
