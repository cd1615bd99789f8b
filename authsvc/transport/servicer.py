"""The Auth service, put together from its parts by audience: the public sign-in
methods (``sign_in``), the caller's own account (``account``) and the token
services (``token_services``). Every field is checked by the domain; who may call
is the door's (``transport.door``); every exception leaves through the one
mapping in ``transport.calls``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ..v1 import auth_pb2

AUTH_METHODS = tuple(m.name for m in auth_pb2.DESCRIPTOR.services_by_name["Auth"].methods)


def auth_servicer(*parts: object) -> Any:
    """One servicer for ``add_AuthServicer_to_server`` from parts that each implement
    some Auth methods; every method must come from exactly one part."""
    found: dict[str, Any] = {}
    for part in parts:
        for name in AUTH_METHODS:
            method = getattr(part, name, None)
            if method is None:
                continue
            if name in found:
                raise TypeError(f"Auth method {name} is implemented twice")
            found[name] = method
    missing = [name for name in AUTH_METHODS if name not in found]
    if missing:
        raise TypeError(f"Auth methods with no implementation: {', '.join(missing)}")
    return SimpleNamespace(**found)
