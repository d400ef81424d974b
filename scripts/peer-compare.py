#!/usr/bin/env python3
"""Assembles scripts/peer-compare.sh's runs into peer-compare.json and peer-compare.html
(inline SVG charts, nothing fetched), and prints the ratios. Usage: peer-compare.py OUT CLAIMS COMMIT"""
import datetime
import html
import json
import os
import sys

out, claims, commit = sys.argv[1], int(sys.argv[2]), sys.argv[3]
RUNS = ["flat-out", "rate-100x"]


def ours(name):
    r = json.load(open(os.path.join(out, f"ours-{name}", "report.json")))
    before, after = map(float, open(os.path.join(out, f"ours-{name}.broker-cpu")).read().split())
    lat = r.get("latency_after_warm_up") or r["latency"]
    if not lat.get("count"):
        # A run too short to have claims after its warm-up: all its claims, as the peer's driver.
        lat = r["latency"]
    run = r["run"]
    outcomes = run["paid"] + run["rejected"] + run["dead_letters"]
    return {
        "complete": run["complete"],
        "outcomes": outcomes,
        "accepted": run["paid"],
        "rejected": run["rejected"],
        "dead_letters": run["dead_letters"],
        "steady_per_s": r["throughput"]["steady_per_s"],
        "p50_ms": lat["p50_ms"],
        "p99_ms": lat["p99_ms"],
        "cpu_us_per_claim": r["resources"]["pipeline_cpu_us_per_claim"],
        "rss_max_mb": r["resources"]["rss_max_mb"],
        "broker_cpu_us_per_claim": 1e6 * (after - before) / max(outcomes, 1),
    }


def peer(guarantee, name):
    r = json.load(open(os.path.join(out, f"peer-{guarantee}-{name}.json")))
    b0, b1, c0, c1, rss = map(float, open(os.path.join(out, f"peer-{guarantee}-{name}.cpu")).read().split())
    outcomes = r["outcomes"]
    return {
        "complete": r["complete"],
        "outcomes": outcomes,
        "accepted": r["accepted"],
        "rejected": r["rejected"],
        "dead_letters": r["dead_letters"],
        "rejections_by_code": r["rejections_by_code"],
        "unmatched": r["unmatched"],
        "steady_per_s": r["steady_per_s"],
        "p50_ms": r["latency"]["p50_ms"],
        "p99_ms": r["latency"]["p99_ms"],
        # The JVM's CPU while it decided the run's claims (utime + stime from /proc).
        "cpu_us_per_claim": 1e6 * (c1 - c0) / max(outcomes, 1),
        "rss_max_mb": rss,
        "broker_cpu_us_per_claim": 1e6 * (b1 - b0) / max(outcomes, 1),
    }


systems = {"ours": {n: ours(n) for n in RUNS}}
for g in ["exactly_once_v2", "at_least_once"]:
    systems[f"peer-{g}"] = {n: peer(g, n) for n in RUNS}


def ratios(peer_name):
    o, p = systems["ours"], systems[peer_name]
    return {
        "throughput_ours_over_peer": o["flat-out"]["steady_per_s"] / max(p["flat-out"]["steady_per_s"], 1e-9),
        "p99_at_100x_ours_over_peer": o["rate-100x"]["p99_ms"] / max(p["rate-100x"]["p99_ms"], 1e-9),
        "p50_at_100x_ours_over_peer": o["rate-100x"]["p50_ms"] / max(p["rate-100x"]["p50_ms"], 1e-9),
        "cpu_per_claim_ours_over_peer": o["flat-out"]["cpu_us_per_claim"] / max(p["flat-out"]["cpu_us_per_claim"], 1e-9),
        "rss_ours_over_peer": o["flat-out"]["rss_max_mb"] / max(p["flat-out"]["rss_max_mb"], 1e-9),
    }


summary = {
    "date": datetime.date.today().isoformat(),
    "commit": commit,
    "claims": claims,
    "rate_100x_per_s": 3169,
    "command": f"scripts/peer-compare.sh {claims}",
    "load_avg": os.getloadavg(),
    "systems": systems,
    "ratios": {g: ratios(f"peer-{g}") for g in ["exactly_once_v2", "at_least_once"]},
    "targets": {
        "throughput_ratio_at_eos_min": 1.5,
        "p99_ratio_at_eos_max": 0.5,
    },
}
eos = summary["ratios"]["exactly_once_v2"]
summary["targets"]["throughput_met"] = eos["throughput_ours_over_peer"] >= 1.5
summary["targets"]["p99_met"] = eos["p99_at_100x_ours_over_peer"] <= 0.5
broken = [f"{s} {n}" for s, runs in systems.items() for n, r in runs.items() if not r["complete"]]
summary["broken_runs"] = broken
json.dump(summary, open(os.path.join(out, "peer-compare.json"), "w"), indent=2)

# The page: a table and one bar chart per figure (inline SVG).
COLORS = {"ours": "#1f6feb", "peer-exactly_once_v2": "#d9822b", "peer-at_least_once": "#8c8c8c"}


def bars(title, unit, pick):
    rows = [(f"{s} {n}", pick(systems[s][n]), COLORS[s]) for s in systems for n in RUNS if pick(systems[s][n]) is not None]
    top = max(v for _, v, _ in rows) or 1
    h = 22 * len(rows) + 30
    parts = [f'<svg width="640" height="{h}" role="img" aria-label="{html.escape(title)}">',
             f'<text x="0" y="14" font-weight="bold">{html.escape(title)}</text>']
    for i, (label, v, c) in enumerate(rows):
        y = 24 + 22 * i
        w = 360 * v / top
        parts.append(f'<text x="0" y="{y + 14}" font-size="12">{html.escape(label)}</text>')
        parts.append(f'<rect x="200" y="{y}" width="{w:.1f}" height="16" fill="{c}"/>')
        parts.append(f'<text x="{205 + w:.1f}" y="{y + 13}" font-size="12">{v:,.1f} {unit}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def row(s, n):
    r = systems[s][n]
    return (f"<tr><td>{s}</td><td>{n}</td><td>{r['steady_per_s']:,.0f}</td><td>{r['p50_ms']:.1f}</td>"
            f"<td>{r['p99_ms']:.1f}</td><td>{r['cpu_us_per_claim']:.0f}</td><td>{r['broker_cpu_us_per_claim']:.0f}</td>"
            f"<td>{r['rss_max_mb']:.0f}</td><td>{r['accepted']}</td><td>{r['rejected']}</td><td>{r['complete']}</td></tr>")


page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Ours against Kafka Streams</title>
<style>body{{font-family:sans-serif;max-width:980px;margin:2em auto}}td,th{{padding:2px 8px;text-align:right}}
td:first-child,td:nth-child(2){{text-align:left}}table{{border-collapse:collapse}}tr:nth-child(even){{background:#f3f3f3}}</style>
</head><body><h1>Ours against a Kafka Streams peer, one broker, one run</h1>
<p>{summary['date']}, commit {html.escape(commit)}, {claims:,} claims, <code>{html.escape(summary['command'])}</code>;
load average at the end {summary['load_avg'][0]:.2f} (a shared 2-core machine).</p>
<table><tr><th>system</th><th>run</th><th>claims/s (steady)</th><th>p50 ms</th><th>p99 ms</th><th>CPU µs/claim</th>
<th>broker CPU µs/claim</th><th>peak RSS MB</th><th>accepted</th><th>rejected</th><th>complete</th></tr>
{''.join(row(s, n) for s in systems for n in RUNS)}</table>
<h2>Ratios (ours / peer)</h2><pre>{html.escape(json.dumps(summary['ratios'], indent=2))}</pre>
<p>Targets at exactly-once: throughput ≥ 1.5× the peer's: {summary['targets']['throughput_met']};
p99 at 100× ≤ half the peer's: {summary['targets']['p99_met']}.</p>
{bars('Steady throughput, flat out and at 100x', 'claims/s', lambda r: r['steady_per_s'])}
{bars('p99 latency after the warm-up', 'ms', lambda r: r['p99_ms'])}
{bars('Process CPU per claim', 'µs', lambda r: r['cpu_us_per_claim'])}
{bars('Peak RSS', 'MB', lambda r: r['rss_max_mb'])}
<h2>The peer's rejections by code (exactly-once, flat out)</h2>
<pre>{html.escape(json.dumps(systems['peer-exactly_once_v2']['flat-out']['rejections_by_code'], indent=1))}</pre>
</body></html>"""
open(os.path.join(out, "peer-compare.html"), "w").write(page)

for g, r in summary["ratios"].items():
    print(f"peer-compare vs {g}: throughput {r['throughput_ours_over_peer']:.2f}x, "
          f"p99 at 100x {r['p99_at_100x_ours_over_peer']:.2f}x, CPU/claim {r['cpu_per_claim_ours_over_peer']:.2f}x, "
          f"RSS {r['rss_ours_over_peer']:.2f}x (ours / peer)")
for s in systems:
    for n in RUNS:
        r = systems[s][n]
        print(f"peer-compare {s} {n}: {r['steady_per_s']:.0f} claims/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
              f"{r['cpu_us_per_claim']:.0f} us CPU/claim, brokers {r['broker_cpu_us_per_claim']:.0f} us/claim, "
              f"RSS {r['rss_max_mb']:.0f} MB, {r['accepted']} accepted, {r['rejected']} rejected")
print(f"peer-compare: {os.path.join(out, 'peer-compare.json')} and peer-compare.html")
if broken:
    print(f"peer-compare: broken runs: {', '.join(broken)}")
    sys.exit(1)
