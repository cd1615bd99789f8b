"""Call a method of the example service (examples/whoami.py) with an access token and
print its answer, or the refusal: status, ErrorInfo reason and the challenge.

    .venv/bin/python -m examples.call 127.0.0.1:50061 Sensitive "$ACCESS"

For trying on loopback: the token goes over a plain channel, so never point it at
another host (a real client uses TLS, as examples/whoami_client.py says).
"""

from __future__ import annotations

import sys

import grpc

from examples.whoami_client import SERVICE, refusal


def main(target: str, method: str, token: str) -> None:
    with grpc.insecure_channel(target) as channel:
        try:
            answer = channel.unary_unary(f"/{SERVICE}/{method}")(
                b"", metadata=[("authorization", f"Bearer {token}")], timeout=10)
        except grpc.RpcError as refused:
            print(refusal(refused))
            trailers = dict(refused.trailing_metadata() or ())  # type: ignore[attr-defined]
            print("www-authenticate:", trailers.get("www-authenticate"))
        else:
            print("answered:", answer.decode())


if __name__ == "__main__":
    main(*sys.argv[1:4])
