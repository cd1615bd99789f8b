"""The performance targets table, one row per target, from one run's results.

Every row gives the measured value, the target and whether this run met it
(``ok``/``NO``; empty where there is no target). A measure this run did not
make (``--http-workers`` phase left out) shows as not run.
"""

from __future__ import annotations

from typing import Any

MIB = 1024
RSS_IDLE_MIB = 130
STARTUP_S = 1.0
IDLE_TX_PER_WORKER_S = 1.0  # database transactions of an idle worker (bench/idle.py)
TARGETS = "performance targets"  # the group of the rows with a target


def rows(results: dict[str, Any], summary: dict[str, Any]) -> list[dict[str, Any]]:
    phases = results["phases"]
    counts = sorted(phases, key=int)
    http_w = str(results["settings"]["http_workers"])
    edge = phases.get(http_w, {})
    out: list[dict[str, Any]] = []

    def add(measure: str, value: float | None, shown: str, target: float | None,
            at_least: bool = True, unit: str = "", group: str = TARGETS) -> None:
        met = None if target is None or value is None else (
            value >= target if at_least else value <= target)
        out.append({"group": group, "measure": measure, "value": value, "shown": shown,
                    "target": target, "at_least": at_least, "unit": unit, "met": met})

    def ratio(measure: str, top: tuple[dict[str, Any], str, str],
              bottom: tuple[dict[str, Any], str, str], target: float, at_least: bool = True,
              group: str = TARGETS) -> None:
        """``top`` and ``bottom`` are (a phase or the HTTP cases, a case, a field)."""
        try:
            a, b = (float(d[case][field]) for d, case, field in (top, bottom))
        except KeyError:
            add(measure, None, "not run", target, at_least, group=group)
            return
        add(measure, a / b, f"{a / b:.2f} ({a:,.1f} / {b:,.1f})", target, at_least,
            group=group)

    http = edge.get("http", {})
    ratio(f"edge HTTP Validate / gateway /healthz, {http_w}w",
          (http, "edge_validate", "rate"), (http, "healthz", "rate"), 0.7)
    ratio(f"HTTP Validate (forwarded) / gRPC Validate, {http_w}w",
          (http, "forwarded_validate", "rate"), (edge, "validate_hot", "rate"), 0.9)
    out.append({"group": TARGETS, "measure": "transactions per SignIn / Refresh",
                "value": None, "shown": "asserted by tests (not here)", "target": None,
                "at_least": False, "unit": "", "met": None, "target_text": "<= 2 / 1"})
    for w in counts:
        p = phases[w]
        ratio(f"SignIn / raw argon2, {w}w", (p, "sign_in", "rate"), (p, "raw_argon2", "rate"),
              0.9)
    for w in counts:
        p = phases[w]
        ratio(f"Refresh / raw transaction, {w}w", (p, "refresh", "rate"),
              (p, "raw_transaction", "rate"), 0.5)
    for w in counts:
        p = phases[w]
        ratio(f"Validate p99 under SignIn / idle, {w}w (ms)",
              (p, "validate_paced_under_sign_in", "p99_ms"), (p, "validate_paced", "p99_ms"),
              3.0, at_least=False)
    for kind, name in (("rss_kib", "RSS"), ("pss_kib", "PSS")):
        snap = edge.get("processes_idle")
        if snap is None:
            add(f"{name} idle, {http_w}w + gateway, total", None, "not run", RSS_IDLE_MIB,
                False, " MiB")
            continue
        mib = snap[kind] / MIB
        add(f"{name} idle, {http_w}w + gateway, total", mib,
            f"{mib:.1f} MiB ({len(snap['processes'])} processes)", RSS_IDLE_MIB, False, " MiB")
    snap = edge.get("processes_after_load")
    add(f"RSS / PSS after HTTP load, {http_w}w + gateway", None,
        "not run" if snap is None else
        f"{snap['rss_kib'] / MIB:.1f} / {snap['pss_kib'] / MIB:.1f} MiB", None)
    for name, target in (("cold", STARTUP_S), ("warm", None)):
        r = results.get("startup", {}).get(name)
        label = (f"start -> first sign-in, {http_w}w "
                 + ("(PG stopped)" if name == "cold" else "(PG running; info)"))
        if r is None:
            add(label, None, "not run", target, False, " s")
        else:
            add(label, r["median"], f"{r['median']:.2f} s (median of {len(r['seconds'])})",
                target, False, " s")
    cost = results.get("idle")
    if cost is not None:  # runs before the idle-cost measure have no row for it
        add(f"idle transactions per worker per second, {http_w}w",
            cost["transactions_per_worker_second"],
            f"{cost['transactions_per_worker_second']:.2f} ({cost['transactions']} in "
            f"{cost['seconds']:.0f} s)", IDLE_TX_PER_WORKER_S, False)
    for w in counts:
        p = phases[w]
        ratio(f"Validate 1 hot token / health, {w}w", (p, "validate_hot", "rate"),
              (p, "health", "rate"), 0.9, group="already met")
        ratio(f"Validate 10k tokens / health, {w}w", (p, "validate_distinct", "rate"),
              (p, "health", "rate"), 0.6, group="already met")
        mem = summary[w]["memory"]
        add(f"RSS growth over {mem['calls']:,} Validates, {w}w", mem["growth"],
            f"{mem['growth']:+.1%}", 0.10, False, group="already met")
        peak = max(mem["peak_mib"])
        add(f"peak RSS per worker, {w}w", peak, f"{peak:.0f} MiB", 150, False, " MiB",
            group="already met")
    return out


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
