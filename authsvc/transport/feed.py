"""How many ``WatchRevocations`` streams each peer may hold.

The feed is for the services that verify authsvc's tokens themselves. Who may
follow it is the door's (``transport.door``): a connection that presented a
client certificate authsvc verified (mutual TLS, ``AUTHSVC_TLS_CLIENT_CA_FILE``),
or else a bearer access token carrying scope ``authsvc.revocations`` (grant it
to the service account a LocalVerifier signs in as). Each peer address may hold
at most ``AUTHSVC_WATCH_STREAMS_PER_PEER`` streams at once on one replica (a
verifier needs one per process); past that the answer is RESOURCE_EXHAUSTED,
so no client can pile up streams that each hold memory for as long as it likes.

Workers share no memory, so the limit is divided: each of a replica's workers
admits ``per_worker_share`` streams of a peer, N // workers but at least one,
and a replica holds at most max(N, workers) streams of one peer. (The kernel
spreads a peer's connections over the workers, so a peer near its limit may be
refused on one worker while another has room; it retries after RETRY_AFTER.)
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import AsyncIterator

import grpc

from ..errors import RateLimited
from .metadata import peer_address

RETRY_AFTER = 5.0


def per_worker_share(per_peer: int, workers: int) -> int:
    """What each of ``workers`` admits of a replica's per-peer limit."""
    return max(1, per_peer // max(1, workers))


class FeedAccess:
    def __init__(self, *, per_peer: int) -> None:
        self._per_peer = per_peer
        self._open: collections.Counter[str] = collections.Counter()

    @contextlib.asynccontextmanager
    async def admitted(self, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        """Hold one of the peer's stream slots while the stream runs; raise
        RESOURCE_EXHAUSTED otherwise."""
        peer = peer_address(context.peer()) or "unknown"
        if self._open[peer] >= self._per_peer:
            raise RateLimited(RETRY_AFTER)
        self._open[peer] += 1
        try:
            yield
        finally:
            self._open[peer] -= 1
            if not self._open[peer]:
                del self._open[peer]
