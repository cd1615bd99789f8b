"""One way to open a channel to authsvc, sync or aio, with keepalive.

Keepalive makes a silently dead peer end a long-lived stream (the
LocalVerifier's ``WatchRevocations``); authsvc accepts pings no more often
than every 10 s.
"""

from __future__ import annotations

import grpc

CHANNEL_OPTIONS = (("grpc.keepalive_time_ms", 15_000), ("grpc.keepalive_timeout_ms", 5_000),
                   ("grpc.keepalive_permit_without_calls", 0))


def open_channel(target: str, credentials: grpc.ChannelCredentials | None = None,
                 ) -> grpc.Channel:
    """A sync channel; TLS (or other channel credentials) when ``credentials`` is given."""
    if credentials is None:
        return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    return grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)


def open_aio_channel(target: str, credentials: grpc.ChannelCredentials | None = None,
                     ) -> grpc.aio.Channel:
    """The same for ``grpc.aio``; make it inside the event loop that will use it."""
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    return grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
