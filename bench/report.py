"""The table, the JSON files and the chart, from one run's results."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from . import footprint, targets

MIB = 1024

# (key, label, ceiling key, target ratio or None); ratio = rate / ceiling rate
RATE_ROWS = [
    ("health", "health Check (ceiling)", None, None),
    ("validate_hot", "Validate, 1 hot token", "health", 0.9),
    ("validate_distinct", "Validate, 10k tokens (warm)", "health", 0.6),
    ("validate_distinct_first_pass", "Validate, 10k tokens, 1st pass", "health", None),
    ("raw_argon2", "raw argon2 verify (ceiling)", None, None),
    ("sign_in", "SignIn", "raw_argon2", 0.9),
    ("raw_transaction", "raw asyncpg tx (ceiling)", None, None),
    ("refresh", "Refresh", "raw_transaction", 0.5),
    ("validate_paced", "Validate @paced, idle", None, None),
]


def rows(phase: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per scenario: rate, p50, p99, ratio to its ceiling, target."""
    out = []
    for key, label, ceiling, target in RATE_ROWS:
        r = phase[key]
        ratio = r["rate"] / phase[ceiling]["rate"] if ceiling else None
        out.append({"scenario": label, "rate": r["rate"], "p50_ms": r.get("p50_ms"),
                    "p99_ms": r.get("p99_ms"), "ratio": ratio, "target": target,
                    "met": None if target is None or ratio is None else ratio >= target})
    idle, loaded = phase["validate_paced"], phase["validate_paced_under_sign_in"]
    ratio = loaded["p99_ms"] / idle["p99_ms"]
    out.append({"scenario": "Validate @paced, under SignIn", "rate": loaded["rate"],
                "p50_ms": loaded["p50_ms"], "p99_ms": loaded["p99_ms"],
                "ratio": ratio, "target": 3.0, "met": ratio <= 3.0, "lower_is_better": True,
                "note": "ratio = p99 / idle p99 (lower is better)"})
    return out


def memory(phase: dict[str, Any]) -> dict[str, Any]:
    samples = phase["memory"]["samples"]
    before = [w["rss_kib"] for w in samples[0]["workers"]]
    after = [w["rss_kib"] for w in samples[-1]["workers"]]
    peak = [w["hwm_kib"] for w in phase["memory_end"]]
    growth = max((a - b) / b for a, b in zip(after, before, strict=True))
    return {"calls": phase["memory"]["calls"], "seconds": phase["memory"]["seconds"],
            "rss_before_mib": [b / MIB for b in before], "rss_after_mib": [a / MIB for a in after],
            "peak_mib": [p / MIB for p in peak], "growth": growth,
            "growth_met": growth < 0.10, "peak_met": max(peak) < 150 * MIB}


def summary(results: dict[str, Any]) -> dict[str, Any]:
    phases = results["phases"]
    out: dict[str, Any] = {w: {"rows": rows(p), "memory": memory(p)} for w, p in phases.items()}
    counts = sorted(phases, key=int)
    if len(counts) > 1:
        one, most = phases[counts[0]], phases[counts[-1]]
        scaling = {key: most[key]["rate"] / one[key]["rate"]
                   for key in ("health", "validate_hot", "validate_distinct", "sign_in",
                               "refresh")}
        out["scaling"] = {"from": int(counts[0]), "to": int(counts[-1]), "ratios": scaling,
                          "target": 1.6, "met": scaling["validate_hot"] >= 1.6}
    out["targets"] = targets.rows(results, out)
    return out


def table(results: dict[str, Any], summary: dict[str, Any]) -> str:
    lines = []
    m = results["machine"]
    lines.append(f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; load "
                 f"{m['load_before'][0]} before, {m['load_after'][0]} after; "
                 f"run took {results['seconds']:.0f} s")
    for workers in sorted(results["phases"], key=int):
        s = summary[workers]
        lines.append("")
        lines.append(f"{workers} worker(s)")
        lines.append(f"{'scenario':32} {'rate/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
                     f"{'ratio':>6} {'target':>7}")
        for r in s["rows"]:
            ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
            target = "" if r["target"] is None else (
                f"{'<=' if r.get('lower_is_better') else '>='}{r['target']:g}"
                + (" ok" if r["met"] else " NO"))
            p50 = "" if r["p50_ms"] is None else f"{r['p50_ms']:.1f}"
            p99 = "" if r["p99_ms"] is None else f"{r['p99_ms']:.1f}"
            lines.append(f"{r['scenario']:32} {r['rate']:9,.1f} {p50:>8} {p99:>8} "
                         f"{ratio:>6} {target:>7}")
        mem = s["memory"]
        lines.append(
            f"memory per worker: peak {', '.join(f'{p:.0f}' for p in mem['peak_mib'])} MiB "
            f"(<150: {'ok' if mem['peak_met'] else 'NO'}); RSS "
            f"{', '.join(f'{b:.0f}' for b in mem['rss_before_mib'])} -> "
            f"{', '.join(f'{a:.0f}' for a in mem['rss_after_mib'])} MiB over "
            f"{mem['calls']:,} Validates in {mem['seconds']:.0f} s, growth "
            f"{mem['growth']:+.1%} (<10%: {'ok' if mem['growth_met'] else 'NO'})")
    if "scaling" in summary:
        sc = summary["scaling"]
        lines.append("")
        lines.append(f"{sc['to']} workers / {sc['from']} worker: " + ", ".join(
            f"{k} {v:.2f}x" for k, v in sc["ratios"].items())
            + f" (Validate target >=1.6: {'ok' if sc['met'] else 'NO'})")
    lines += _edge(results)
    lines.append("")
    lines += targets.table(summary["targets"])
    m = results["machine"]
    lines.append(f"load average {m['load_before']} before, {m['load_after']} after")
    return "\n".join(lines)


def _edge(results: dict[str, Any]) -> list[str]:
    """Start-up, the HTTP cases and every process's memory, where measured."""
    lines = []
    s = results["settings"]
    for name, r in results.get("startup", {}).items():
        lines += ["", f"start -> first sign-in, {r['workers']} workers, PostgreSQL "
                  f"{'stopped' if r['cold_database'] else 'running'} at start: median "
                  f"{r['median']:.2f} s of {', '.join(f'{x:.2f}' for x in r['seconds'])} ({name})"]
    phase = results["phases"].get(str(s["http_workers"]), {})
    if "http" in phase:
        lines += ["", f"HTTP through the gateway, {s['http_workers']} workers, vegeta "
                  f"{s['vegeta']} -rate=0 -max-workers={s['http_concurrency']}, "
                  f"{s['duration']:g} s each (gRPC: ghz -c {s['concurrency']})",
                  f"{'case':28} {'rate/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  "
                  "CPU s: workers, gateway, vegeta"]
        grpc = phase["validate_hot"]
        lines.append(f"{'gRPC Validate (ghz)':28} {grpc['rate']:9,.1f} {grpc['p50_ms']:8.1f} "
                     f"{grpc['p99_ms']:8.1f} {grpc['errors']:>7}  {grpc['server_cpu_s']:.1f}")
        for key, label in (("forwarded_validate", "HTTP Validate, forwarded"),
                           ("healthz", "gateway GET /healthz"),
                           ("edge_validate", "HTTP Validate, at the edge")):
            r = phase["http"][key]
            gw = r["cpu_s"]["forwarding_gateway" if key == "forwarded_validate" else "gateway"]
            lines.append(f"{label:28} {r['rate']:9,.1f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
                         f"{r['errors']:>7}  {r['cpu_s']['workers']:.1f}, {gw:.1f}, "
                         f"{r['cpu_s']['vegeta']:.1f}")
    for key, title in (("processes_idle", f"idle ({s['rest']:g} s after start-up)"),
                       ("processes_after_load", "after the HTTP cases")):
        if key in phase:
            lines += ["", *footprint.table(f"processes, {s['http_workers']} workers + gateway, "
                                           f"{title}", phase[key])]
    return lines


def emit(result: dict[str, Any], out_dir: Path | None, name: str) -> None:
    """A measuring command's result: printed as JSON, and with ``out_dir`` written
    there as ``NAME-latest.json``."""
    text = json.dumps(result, indent=2)
    print(text)
    if out_dir is not None:
        (out_dir / f"{name}-latest.json").write_text(text + "\n")


def write(results: dict[str, Any], out_dir: Path) -> None:
    s = summary(results)
    results = {**results, "summary": s}
    text = table(results, s)
    print(text, flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    body = json.dumps(results, indent=1) + "\n"
    (out_dir / "latest.json").write_text(body)
    stamp = time.strftime("%Y-%m-%d-%H%M", time.gmtime())
    (out_dir / f"{stamp}.json").write_text(body)
    (out_dir / "latest.txt").write_text(text + "\n")
    chart(results, out_dir / "latest.png")


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = results["phases"]
    counts = sorted(phases, key=int)
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    groups = [("health", "validate_hot", "validate_distinct", "validate_distinct_first_pass"),
              ("raw_argon2", "sign_in"), ("raw_transaction", "refresh")]
    labels = {"health": "health\n(ceiling)", "validate_hot": "Validate\nhot",
              "validate_distinct": "Validate\n10k warm",
              "validate_distinct_first_pass": "Validate\n10k 1st pass",
              "raw_argon2": "raw argon2\n(ceiling)", "sign_in": "SignIn",
              "raw_transaction": "raw tx\n(ceiling)", "refresh": "Refresh"}
    keys = [k for g in groups for k in g]
    width = 0.8 / len(counts)
    ax = axes[0]
    for i, w in enumerate(counts):
        rates = [phases[w][k]["rate"] for k in keys]
        xs = [j + (i - (len(counts) - 1) / 2) * width for j in range(len(keys))]
        ax.bar(xs, rates, width, label=f"{w} worker{'s' if w != '1' else ''}")
    ax.set_xticks(range(len(keys)), [labels[k] for k in keys], fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("calls per second (log)")
    ax.set_title("Throughput and its ceilings")
    ax.legend()

    ax = axes[1]
    names = [("validate_paced", "idle"), ("validate_paced_under_sign_in", "under SignIn")]
    xs_labels = []
    for i, w in enumerate(counts):
        for j, (key, label) in enumerate(names):
            x = i * 2.5 + j
            r = phases[w][key]
            ax.bar(x - 0.2, r["p50_ms"], 0.4, color="tab:blue",
                   label="p50" if (i, j) == (0, 0) else None)
            ax.bar(x + 0.2, r["p99_ms"], 0.4, color="tab:red",
                   label="p99" if (i, j) == (0, 0) else None)
            xs_labels.append((x, f"{w}w {label}"))
    ax.set_xticks([x for x, _ in xs_labels], [t for _, t in xs_labels], fontsize=8)
    ax.set_ylabel("ms")
    ax.set_title(f"Validate latency at {results['settings']['paced_rps']} calls/s")
    ax.legend()

    ax = axes[2]
    for w in counts:
        samples = phases[w]["memory"]["samples"]
        for k in range(len(samples[0]["workers"])):
            ax.plot([s["calls"] for s in samples],
                    [s["workers"][k]["rss_kib"] / MIB for s in samples], marker=".",
                    label=f"{w}w, worker {k}")
    ax.set_xlabel("Validates")
    ax.set_ylabel("RSS, MiB")
    ax.set_ylim(bottom=0)
    ax.set_title("Worker RSS over Validates")
    ax.legend(fontsize=8)
    m = results["machine"]
    fig.suptitle(f"authsvc, {m['cpu']}, {m['cores']} cores, load {m['load_before'][0]}; "
                 f"ghz {results['settings']['ghz']} -c {results['settings']['concurrency']} "
                 f"--connections {results['settings']['connections']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
