"""A client of the example service (examples/whoami.py): it signs in to authsvc as a
user, and the session's access token goes with every call it makes to the service.

    WHOAMI_CLIENT_EMAIL=alice@example.com WHOAMI_CLIENT_PASSWORD='…' \\
        .venv/bin/python -m examples.whoami_client 127.0.0.1:50051 127.0.0.1:50061
"""

from __future__ import annotations

import os
import sys

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from authsvc.client import SessionCredentials

SERVICE = "example.v1.Whoami"


def refusal(error: grpc.RpcError) -> str:
    """A refused call's status and the ErrorInfo reason it carries."""
    info = error_details_pb2.ErrorInfo()
    rpc_status.from_call(error).details[0].Unpack(info)
    return f"{error.code().name} {info.reason}"


def main(authsvc: str, whoami: str) -> None:
    # Signs in once (the password is not kept) and refreshes before the token expires.
    credentials = SessionCredentials.sign_in(authsvc, email=os.environ["WHOAMI_CLIENT_EMAIL"],
                                             password=os.environ.pop("WHOAMI_CLIENT_PASSWORD"))
    # Call credentials need a secure channel: grpc.ssl_channel_credentials() for TLS in
    # production; on loopback, local credentials will do.
    secure = grpc.composite_channel_credentials(grpc.local_channel_credentials(),
                                                credentials.call_credentials())
    with grpc.secure_channel(whoami, secure) as channel:
        answer = channel.unary_unary(f"/{SERVICE}/Get")(b"", timeout=10)
        print("Get answered my user id:", answer.decode() == credentials.user_id)
        try:
            channel.unary_unary(f"/{SERVICE}/Admin")(b"", timeout=10)
        except grpc.RpcError as refused:  # alice lacks the scope example.admin
            print("Admin:", refusal(refused))
    with grpc.insecure_channel(whoami) as bare:
        try:
            bare.unary_unary(f"/{SERVICE}/Get")(b"", timeout=10)
        except grpc.RpcError as refused:
            print("Get without a token:", refusal(refused))
    credentials.sign_out()  # revokes the session; the service refuses its token from now on
    credentials.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
