"""Keycloak's userinfo, the anchor for the forwarded HTTP Validate.

With ``scripts/bench --peers`` (Java 21+ and mvn, as ``scripts/peers/keycloak``
needs), after authsvc's phases, on the same cores: Keycloak (the version
``scripts/peers/keycloak`` pins) in dev mode on a PostgreSQL of its own, the
peers fixture's realm and users created through its admin API, one user's
access token from the password grant (``scope=openid``), then the same vegeta
attack as every HTTP case on ``GET /realms/acme/protocol/openid-connect/userinfo``
with that token (after at least ``JIT_WARMUP`` seconds of warm-up: the JVM
compiles as it serves): Keycloak's check of a bearer token, the work the
forwarding gateway asks of authsvc. Nothing of authsvc runs meanwhile.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.fixtures.peers import make_keycloak
from tests.fixtures.peers._common import cache_dir, call

from . import vegeta

# Keycloak runs on the JVM, which compiles its hot paths while it serves: the
# attack's own warm-up, but at least this long, before the measured seconds.
JIT_WARMUP = 20.0


def keycloak_userinfo(client: vegeta.Client) -> dict[str, Any]:
    """One vegeta attack on a fresh Keycloak's userinfo, as ``vegeta.attack`` reports
    it, with Keycloak's version."""
    with make_keycloak.serving(cache_dir() / "keycloak-bench") as (base, *_):
        make_keycloak.populate(base)
        # A user without a second factor, whose hash the realm's policy keeps.
        user = next(u for u in make_keycloak.USERS
                    if u["enabled"] and not u.get("otp") and "argon2" in u["policy"])
        realm = f"{base}/realms/{make_keycloak.REALM}/protocol/openid-connect"
        token = call("POST", f"{realm}/token", form={
            "grant_type": "password", "client_id": _client(base), "scope": "openid",
            "username": user["username"], "password": user["password"]})["access_token"]
        call("GET", f"{realm}/userinfo", headers={"Authorization": f"Bearer {token}"})
        result = vegeta.attack(dataclasses.replace(client, warmup=max(client.warmup, JIT_WARMUP)),
                               vegeta.target(
            "GET", f"{realm}/userinfo", {"Authorization": f"Bearer {token}"}))
    print(f"  keycloak userinfo: {result['rate']:,.0f}/s p50 {result['p50_ms']:.1f} ms "
          f"p99 {result['p99_ms']:.1f} ms ({result['errors']} errors of "
          f"{result['requests']})", flush=True)
    return {**result, "keycloak": make_keycloak.VERSION}


def _client(base: str) -> str:
    """A public client of the realm with the password grant: an application's, with
    Keycloak's ordinary access tokens (its own ``admin-cli`` gets lightweight ones)."""
    admin = call("POST", f"{base}/realms/master/protocol/openid-connect/token", form={
        "grant_type": "password", "client_id": "admin-cli", "username": "admin",
        "password": make_keycloak.ADMIN_PASSWORD})["access_token"]
    call("POST", f"{base}/admin/realms/{make_keycloak.REALM}/clients",
         headers={"Authorization": f"Bearer {admin}"},
         json_body={"clientId": "bench", "publicClient": True, "enabled": True,
                    "directAccessGrantsEnabled": True, "standardFlowEnabled": False})
    return "bench"
