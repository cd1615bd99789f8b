"""Every call's last word: one interceptor, outermost on authsvc's server.

- **Decoding.** grpc.aio deserializes a request before any handler runs and,
  when protobuf cannot parse it (corrupt wire format, a string field that
  is not UTF-8), answers UNKNOWN with the parser's text. Here each unary
  request goes through a deserializer that returns a marker instead of
  raising, and the marker is refused as INVALID_ARGUMENT (field ``request``).
- **The one mapping.** Any exception a servicer raises leaves through
  ``authsvc.guard.status.describe``: client errors with their status and
  ErrorInfo, anything unexpected as INTERNAL with a generic message (logged
  here with its type; grpc.aio would otherwise send the exception's text).
- **Observation.** The call is counted and logged (``transport.observability``)
  before its answer is sent, so a client that has its answer can read the
  metrics it moved.
- **Tracing.** While tracing is on (``OTEL_EXPORTER_OTLP_ENDPOINT``), each call
  but health checking (probes, every few seconds) has a server span
  (``transport.tracing``), current while a unary call runs;
  its trace and span ids go into the call's log line.
- **Draining.** From ``drain()`` on (SIGTERM), every new call but health
  checking is answered UNAVAILABLE (retryable, unlike the CANCELLED grpc
  gives calls it has not dispatched when it stops), while calls in flight
  finish; ``idle()`` waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from .. import tracing
from ..clock import call_deadline
from ..errors import ClientError, InvalidArgument, Unavailable
from ..guard.handlers import Behavior, Handler, Kind, wrap_rpc_behavior
from ..guard.status import describe
from .observability import observe, request_id
from .tracing import RpcSpan

log = logging.getLogger(__name__)

UNDECODABLE = object()
DEADLINE_MARGIN = 0.05  # seconds kept to send UNAVAILABLE before the client's deadline
ALWAYS_ANSWERED = "/grpc.health.v1.Health/"  # health says NOT_SERVING while draining


def _safe(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def safe(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:
            return UNDECODABLE
    return safe


class _Call:
    """One call being answered: counted in flight from its start to ``finish``,
    and observed exactly once."""

    def __init__(self, calls: CallInterceptor, method: str, request_id: str,
                 context: grpc.aio.ServicerContext, *, unary: bool = True) -> None:
        self.calls = calls
        self.method = method
        self.request_id = request_id
        self.context = context
        self.started = time.perf_counter()
        self.observed = False
        self.span = RpcSpan(method, context.invocation_metadata(), current=unary) \
            if tracing.enabled() and not method.startswith(ALWAYS_ANSWERED) else None
        calls.started()
        remaining = context.time_remaining()
        if remaining is not None:  # answer a little before the client gives up
            call_deadline.set(time.monotonic() + remaining - DEADLINE_MARGIN)

    def finish(self, response: Any) -> None:
        """The call is over (answered, refused or cancelled)."""
        self.done(response)
        self.end_span()
        self.calls.ended()

    def end_span(self) -> None:
        """End the call's span, once: before a refusal leaves (as its metrics are
        moved), or when the call is over."""
        if self.span is not None:
            self.span.end()
            self.span = None

    def check(self, request: Any) -> None:
        if self.calls.draining and not self.method.startswith(ALWAYS_ANSWERED):
            raise Unavailable("the server is shutting down")
        if request is UNDECODABLE:
            raise InvalidArgument("request", "is not a valid message for this method")

    async def refuse(self, exc: Exception) -> None:
        """Observe, then answer ``exc`` through the one mapping."""
        code, message, trailers = describe(exc)
        if code == grpc.StatusCode.INTERNAL:
            log.error("unexpected error in %s", type(exc).__name__, exc_info=exc)
        self.done(None, code, exc.reason if isinstance(exc, ClientError) else None)
        self.end_span()
        await self.context.abort(code, message, trailing_metadata=trailers)

    def done(self, response: Any, code: grpc.StatusCode | None = None,
             reason: str | None = None) -> None:
        if not self.observed:
            self.observed = True
            answered = observe(self.method, self.context, self.started, self.request_id,
                               response, code, reason,
                               self.span.ids() if self.span is not None else None)
            if self.span is not None:
                self.span.answered(answered, reason)


def _answered(calls: CallInterceptor, behavior: Behavior, method: str) -> Behavior:
    if inspect.isasyncgenfunction(behavior):
        async def stream(request: Any, context: grpc.aio.ServicerContext,
                         ) -> AsyncIterator[Any]:
            call = _Call(calls, method, request_id(context.invocation_metadata()), context,
                         unary=False)
            try:
                call.check(request)
                async for item in behavior(request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await call.refuse(exc)
            finally:
                call.finish(None)
        return stream

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        call = _Call(calls, method, request_id(context.invocation_metadata()), context)
        response = None
        try:
            call.check(request)
            response = await behavior(request, context)
            return response
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await call.refuse(exc)
        finally:
            call.finish(response)
    return unary


class CallInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.draining = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._handlers: dict[str, tuple[Handler, Handler]] = {}  # method → (inner, wrapped)

    def started(self) -> None:
        self._in_flight += 1
        self._idle.clear()

    def ended(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    def drain(self) -> None:
        """Answer every new call (but health) UNAVAILABLE from now on."""
        self.draining = True

    async def idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until no call is in flight; True if none is."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return self._idle.is_set()

    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
            details: grpc.HandlerCallDetails) -> Handler:
        handler = await continuation(details)
        if handler is None:
            return None
        return self._wrapped(details.method, handler)

    def _wrapped(self, method: str, handler: Handler) -> Handler:
        """``handler`` answered through this interceptor, made once per method and
        handler (the servicer's handlers do not change while the server runs): the
        request id and everything else of a call are read in the call."""
        known = self._handlers.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        deserializer = handler.request_deserializer
        safe = None
        if deserializer is not None and not handler.request_streaming:
            safe = _safe(deserializer)

        def wrap(behavior: Behavior, _kind: Kind) -> Behavior:
            return _answered(self, behavior, method)

        wrapped = wrap_rpc_behavior(handler, wrap, request_deserializer=safe)
        self._handlers[method] = (handler, wrapped)
        return wrapped
