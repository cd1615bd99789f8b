"""The performance targets table, one row per target, from one run's results.

Every row gives the measured value, the target and whether this run met it
(``ok``/``NO``; empty where there is no target). A measure this run did not
make (``--http-workers`` phase left out) shows as not run.
"""

from __future__ import annotations

import statistics
from typing import Any

MIB = 1024
RSS_IDLE_MIB = 110  # idle serve with --http-workers workers, and the gateway
STARTUP_WARM_S = 0.3  # start -> first sign-in, PostgreSQL running
STARTUP_COLD_S = 0.6  # the same, the embedded PostgreSQL stopped
IDLE_TX_PER_WORKER_S = 1.0  # database transactions of an idle worker (bench/idle.py)
SIGN_IN_TO_HASH = 0.90  # SignIn / raw argon2 verifies on the same threads
REFRESH_CPU_MS = 0.5  # server CPU per Refresh
VALIDATE_TO_EMPTY = 0.95  # gRPC Validate / health Check
FORWARDED_TO_KEYCLOAK = 1.5  # forwarded HTTP Validate / Keycloak's userinfo
TAIL_UNDER_HASHING = 3.0  # Validate p99 under a SignIn burst / idle
# The hot paths against --baseline: this checkout's rate at least this share of the
# baseline's, its CPU per call at most this multiple (the rounds' spread on this VM).
NOT_SLOWER = 0.95
TARGETS = "performance targets"  # the group of the rows with a target
BEFORE_AFTER = "this checkout against the baseline"
ALSO = "also measured"


def rows(results: dict[str, Any], summary: dict[str, Any]) -> list[dict[str, Any]]:
    phases = results["phases"]
    counts = sorted(phases, key=int)
    http_w = str(results["settings"]["http_workers"])
    edge = phases.get(http_w, {})
    http = edge.get("http", {})
    out: list[dict[str, Any]] = []

    def add(measure: str, value: float | None, shown: str, target: float | None,
            at_least: bool = True, unit: str = "", group: str = TARGETS) -> None:
        met = None if target is None or value is None else (
            value >= target if at_least else value <= target)
        out.append({"group": group, "measure": measure, "value": value, "shown": shown,
                    "target": target, "at_least": at_least, "unit": unit, "met": met})

    def ratio(measure: str, top: tuple[dict[str, Any], str, str],
              bottom: tuple[dict[str, Any], str, str], target: float | None,
              at_least: bool = True, group: str = TARGETS) -> None:
        """``top`` and ``bottom`` are (a phase or the HTTP cases, a case, a field)."""
        try:
            a, b = (float(d[case][field]) for d, case, field in (top, bottom))
        except KeyError:
            add(measure, None, "not run", target, at_least, group=group)
            return
        add(measure, a / b, f"{a / b:.2f} ({a:,.1f} / {b:,.1f})", target, at_least,
            group=group)

    for w in counts:
        p = phases[w]
        ratio(f"SignIn / raw argon2, {w}w", (p, "sign_in", "rate"), (p, "raw_argon2", "rate"),
              SIGN_IN_TO_HASH)
    ratio(f"HTTP SignIn (gateway) / raw argon2, {http_w}w", (http, "sign_in", "rate"),
          (edge, "raw_argon2", "rate"), SIGN_IN_TO_HASH)
    for w in counts:
        per_call = cpu_ms(phases[w].get("sign_in"))
        per_hash = hash_cpu_ms(phases[w].get("raw_argon2"))
        if per_call is None or per_hash is None:
            add(f"server CPU per SignIn beyond the hash, {w}w", None, "not run", None)
        else:
            add(f"server CPU per SignIn beyond the hash, {w}w", per_call - per_hash,
                f"{per_call - per_hash:.1f} ms ({per_call:.1f} - {per_hash:.1f} ms a hash)",
                None, unit=" ms")
    for w in counts:
        per_call = cpu_ms(phases[w].get("sign_in"), "database_cpu_s")
        add(f"PostgreSQL CPU per SignIn, {w}w", per_call,
            "not run" if per_call is None else f"{per_call:.2f} ms", None, unit=" ms")
    for w in counts:
        per_call = cpu_ms(phases[w].get("refresh"))
        add(f"server CPU per Refresh, {w}w", per_call,
            "not run" if per_call is None else f"{per_call:.2f} ms", REFRESH_CPU_MS, False,
            " ms")
    for w in counts:  # the floor under every RPC's CPU
        per_call = cpu_ms(phases[w].get("health"))
        add(f"server CPU per empty RPC (health), {w}w", per_call,
            "not run" if per_call is None else f"{per_call:.2f} ms", None, unit=" ms")
    bare = next((cpu_ms(phases[w].get("bare_grpc_health")) for w in counts
                 if "bare_grpc_health" in phases[w]), None)
    add("server CPU per empty RPC on a bare grpc.aio server, 1w", bare,
        "not run" if bare is None else f"{bare:.2f} ms", None, unit=" ms")
    for w in counts:
        p = phases[w]
        ratio(f"gRPC Validate / empty RPC (health), {w}w", (p, "validate_hot", "rate"),
              (p, "health", "rate"), VALIDATE_TO_EMPTY)
    peers = results.get("peers") or {}
    ratio(f"HTTP Validate (forwarded) / Keycloak userinfo, {http_w}w",
          (http, "forwarded_validate", "rate"), (peers, "keycloak_userinfo", "rate"),
          FORWARDED_TO_KEYCLOAK)
    out.append({"group": TARGETS, "measure": "transactions per SignIn / Refresh",
                "value": None, "shown": "asserted by tests (not here)", "target": None,
                "at_least": False, "unit": "", "met": None, "target_text": "<= 2 / 1"})
    snap = edge.get("processes_idle")
    add(f"RSS idle, {http_w}w + gateway, total", None if snap is None else snap["rss_kib"] / MIB,
        "not run" if snap is None else
        f"{snap['rss_kib'] / MIB:.1f} MiB ({len(snap['processes'])} processes)",
        RSS_IDLE_MIB, False, " MiB")
    for key, when in (("processes_idle", "idle"), ("processes_after_load", "after HTTP load"),
                      ("processes_after_bench", "after the whole phase")):
        snap = edge.get(key)
        add(f"RSS / PSS {when}, {http_w}w + gateway", None,
            "not run" if snap is None else
            f"{snap['rss_kib'] / MIB:.1f} / {snap['pss_kib'] / MIB:.1f} MiB", None)
    for name, target in (("warm", STARTUP_WARM_S), ("cold", STARTUP_COLD_S)):
        r = results.get("startup", {}).get(name)
        label = (f"start -> first sign-in, {http_w}w "
                 + ("(PG stopped)" if name == "cold" else "(PG running)"))
        if r is None:
            add(label, None, "not run", target, False, " s")
        else:
            add(label, r["median"], f"{r['median']:.2f} s (median of {len(r['seconds'])})",
                target, False, " s")
    cost = results.get("idle")
    add(f"idle transactions per worker per second, {http_w}w",
        None if cost is None else cost["transactions_per_worker_second"],
        "not run" if cost is None else
        f"{cost['transactions_per_worker_second']:.2f} ({cost['transactions']} in "
        f"{cost['seconds']:.0f} s)", IDLE_TX_PER_WORKER_S, False)
    for w in counts:
        p = phases[w]
        ratio(f"Validate p99 under SignIn / idle, {w}w (ms)",
              (p, "validate_paced_under_sign_in", "p99_ms"), (p, "validate_paced", "p99_ms"),
              TAIL_UNDER_HASHING, at_least=False)
    before_after(results.get("before_after"), add)
    ratio(f"edge HTTP Validate / gateway /healthz, {http_w}w",
          (http, "edge_validate", "rate"), (http, "healthz", "rate"), None, group=ALSO)
    ratio(f"HTTP Validate (forwarded) / gRPC Validate, {http_w}w",
          (http, "forwarded_validate", "rate"), (edge, "validate_hot", "rate"), None,
          group=ALSO)
    for w in counts:
        p = phases[w]
        ratio(f"Refresh / raw transaction, {w}w", (p, "refresh", "rate"),
              (p, "raw_transaction", "rate"), None, group=ALSO)
        ratio(f"Validate 10k tokens / health, {w}w", (p, "validate_distinct", "rate"),
              (p, "health", "rate"), None, group=ALSO)
        mem = summary[w]["memory"]
        add(f"RSS growth over {mem['calls']:,} Validates, {w}w", mem["growth"],
            f"{mem['growth']:+.1%}", None, group=ALSO)
        peak = max(mem["peak_mib"])
        add(f"peak RSS per worker, {w}w", peak, f"{peak:.0f} MiB", None, unit=" MiB",
            group=ALSO)
    return out


def before_after(compared: dict[str, Any] | None, add: Any) -> None:
    """This checkout's hot paths against ``--baseline``'s: medians of the alternating
    rounds, rate (at least ``NOT_SLOWER`` of the baseline's) and server CPU per call
    (at most 1 / ``NOT_SLOWER`` of it)."""
    if compared is None:
        add("hot paths against a baseline checkout", None,
            "not run (scripts/bench --baseline DIR)", None, group=BEFORE_AFTER)
        return
    w = compared["workers"]
    for name, label in (("validate_hot", "Validate"), ("sign_in", "SignIn"),
                        ("refresh", "Refresh")):
        runs = compared["scenarios"][name]
        for field, measure, target, at_least in (
                ("rate", "rate", NOT_SLOWER, True),
                ("cpu_ms_per_call", "server CPU per call", 1 / NOT_SLOWER, False)):
            this = statistics.median(r[field] for r in runs["this"])
            base = statistics.median(r[field] for r in runs["baseline"])
            shown = (f"{this / base:.2f} ({this:,.1f} / {base:,.1f}/s)" if field == "rate"
                     else f"{this / base:.2f} ({this:.2f} / {base:.2f} ms)")
            add(f"{label} {measure}, this / {compared['commit']}, {w}w", this / base, shown,
                round(target, 2), at_least, group=BEFORE_AFTER)


def cpu_ms(result: dict[str, Any] | None, field: str = "server_cpu_s") -> float | None:
    """CPU per call of a scenario's result, in ms: the workers' (``server_cpu_s``),
    PostgreSQL's (``database_cpu_s``) or ghz's (``client_cpu_s``); None where not
    counted."""
    if not result or not result.get(field) or not result.get("calls"):
        return None
    return 1000 * float(result[field]) / int(result["calls"])


def hash_cpu_ms(result: dict[str, Any] | None) -> float | None:
    """CPU per raw argon2 verify, in ms."""
    if not result or not result.get("cpu_s") or not result.get("calls"):
        return None
    return 1000 * float(result["cpu_s"]) / int(result["calls"])


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"{TARGETS:52} {'measured':34} {'target':>9}"]
    group = ""
    for r in rows:
        if r["group"] != group:
            group = r["group"]
            if group != TARGETS:
                lines.append(f"-- {group}")
        if "target_text" in r:
            target = r["target_text"]
        elif r["target"] is None:
            target = ""
        else:
            target = f"{'>=' if r['at_least'] else '<='} {_number(r['target'])}{r['unit']}"
            if r["unit"] == "" and r["target"] < 1 and not r["at_least"]:
                target = f"< {r['target']:.0%}"
        status = "" if r["met"] is None else ("ok" if r["met"] else "NO")
        lines.append(f"{r['measure']:52} {r['shown']:34} {target:>9}  {status}")
    return lines


def _number(x: float) -> str:
    return f"{x:g}"
