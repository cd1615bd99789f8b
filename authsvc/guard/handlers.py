"""The one helper that rewraps a gRPC method handler, of any of the four kinds.

An interceptor that wants to run code around a method gets the handler's
behaviour, wraps it, and hands it back in a handler of the same kind with
the same (de)serializers, the way grpc's own interceptor examples do
(``_wrap_rpc_behavior``). Both authsvc's server and the guard use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

Handler = Any  # grpc.RpcMethodHandler: grpc ships no type information
Behavior = Callable[..., Any]
Kind = tuple[bool, bool]  # (request_streaming, response_streaming)

_KINDS: dict[Kind, tuple[str, Callable[..., Handler]]] = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def kind_of(handler: Handler) -> Kind:
    return bool(handler.request_streaming), bool(handler.response_streaming)


def behavior_of(handler: Handler) -> Behavior:
    behavior: Behavior = getattr(handler, _KINDS[kind_of(handler)][0])
    return behavior


def handler_of(kind: Kind, behavior: Behavior, request_deserializer: Any = None,
               response_serializer: Any = None) -> Handler:
    """A new handler of ``kind`` running ``behavior``."""
    return _KINDS[kind][1](behavior, request_deserializer=request_deserializer,
                           response_serializer=response_serializer)


def wrap_rpc_behavior(handler: Handler, wrap: Callable[[Behavior, Kind], Behavior], *,
                      request_deserializer: Any = None) -> Handler:
    """``handler`` with its behaviour replaced by ``wrap(behaviour, kind)``; the
    request deserializer too when one is given."""
    kind = kind_of(handler)
    return handler_of(kind, wrap(behavior_of(handler), kind),
                      request_deserializer or handler.request_deserializer,
                      handler.response_serializer)
