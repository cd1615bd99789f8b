"""A downstream service protected by authsvc: one interceptor in front of its handlers.

``example.v1.Whoami`` answers with the caller's user id, read from the
verified token. ``Get`` needs any valid token, ``Admin`` also the scope
``example.admin``, ``Sensitive`` a sign-in with a second factor within the last
five minutes (step-up), and ``Watch`` streams the id three times. Messages are raw
bytes (no proto of its own), through a generic handler.

Run it next to ``scripts/serve``, as a service account allowed to follow
authsvc's revocations (the LocalVerifier signs in once and keeps its token
fresh; the password is not kept):

    echo 'a long service password' | .venv/bin/authsvc users add \
        --email whoami@example.com --scope authsvc.revocations --password-stdin
    WHOAMI_EMAIL=whoami@example.com WHOAMI_PASSWORD='a long service password' \
        .venv/bin/python -m examples.whoami 127.0.0.1:50051 127.0.0.1:50061
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator

import grpc

from authsvc.client import SessionCredentials
from authsvc.interceptor import AsyncAuthInterceptor, current_claims
from authsvc.verifiers import LocalVerifier, Verifier

SERVICE = "example.v1.Whoami"
ADMIN_SCOPE = "example.admin"


async def get(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return current_claims().user_id.encode()


async def admin(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b"admin " + current_claims().user_id.encode()


async def sensitive(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b"sensitive " + current_claims().user_id.encode()


async def watch(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    for _ in range(3):
        yield current_claims().user_id.encode()


HANDLERS = grpc.method_handlers_generic_handler(SERVICE, {
    "Get": grpc.unary_unary_rpc_method_handler(get),
    "Admin": grpc.unary_unary_rpc_method_handler(admin),
    "Sensitive": grpc.unary_unary_rpc_method_handler(sensitive),
    "Watch": grpc.unary_stream_rpc_method_handler(watch),
})


@contextlib.asynccontextmanager
async def serving(verifier: Verifier | None, listen: str = "127.0.0.1:0",
                  ) -> AsyncIterator[int]:
    """The service on ``listen``, guarded by ``verifier`` (None: unprotected); yields its port."""
    interceptors = [] if verifier is None else [
        # --8<-- [start:interceptor]
        AsyncAuthInterceptor(
            verifier,
            scopes={f"/{SERVICE}/Admin": [ADMIN_SCOPE]},
            require_amr={f"/{SERVICE}/Sensitive": ("otp", "hwk", "swk")},  # any second factor
            max_age={f"/{SERVICE}/Sensitive": 300}),                       # signed in ≤ 5 min ago
        # --8<-- [end:interceptor]
    ]
    server = grpc.aio.server(interceptors=interceptors)
    server.add_generic_rpc_handlers((HANDLERS,))
    port = server.add_insecure_port(listen)
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


async def main(authsvc: str, listen: str) -> None:
    credentials = SessionCredentials.sign_in(authsvc, email=os.environ["WHOAMI_EMAIL"],
                                             password=os.environ.pop("WHOAMI_PASSWORD"))
    async with LocalVerifier(authsvc, access_token=credentials.access_token) as verifier, \
            serving(verifier, listen) as port:
        print(f"{SERVICE} on port {port}, verifying tokens of {authsvc}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
