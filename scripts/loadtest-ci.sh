#!/usr/bin/env bash
# A bounded load test for CI (well under 3 minutes on the 2-core machine):
# a small corpus, once flat out and once at 100x the billion-a-year mean, on
# the local log, with the raw limits. Checks the reports hang together and
# prints the headline figures; it does not fail on a missed performance
# target (a shared CI machine is no place to judge one), only on a broken run.
#   scripts/loadtest-ci.sh [OUT_DIR]      (release binary built if missing)
# Environment: CLEARING (the binary to use), LOADTEST_CLAIMS (default 5000).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${1:-${TMPDIR:-/tmp}/clearing-loadtest-ci}"
CLAIMS="${LOADTEST_CLAIMS:-5000}"
export CLEARING_KEY_CACHE="${CLEARING_KEY_CACHE:-$HOME/.cache/clearing/keys}"
BIN="${CLEARING:-}"
if [ -z "$BIN" ]; then
  cargo build --release --quiet --bin clearing
  BIN="${CARGO_TARGET_DIR:-target}/release/clearing"
fi
rm -rf "$OUT"
mkdir -p "$OUT"
CORPUS="$OUT/corpus"

run() {
  local name=$1; shift
  echo "loadtest-ci: $name" >&2
  timeout 150 "$BIN" loadtest --claims "$CLAIMS" --corpus "$CORPUS" --out "$OUT/$name" \
    --drain-timeout 60 "$@" > "$OUT/$name.txt"
  cat "$OUT/$name.txt"
}

run flat-out --passthrough-records "$CLAIMS"
run rate-100x --rate 3169 --no-raw

python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
bad = []
for name in ["flat-out", "rate-100x"]:
    r = json.load(open(os.path.join(out, name, "report.json")))
    run, lat = r["run"], r["latency"]
    if not run["complete"] or run["pending"] != 0:
        bad.append(f"{name}: incomplete")
    if run["paid"] + run["rejected"] + run["dead_letters"] != run["submitted"]:
        bad.append(f"{name}: counts do not add up")
    if not (0 < lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"]):
        bad.append(f"{name}: percentiles out of order")
    if r["throughput"]["steady_per_s"] <= 0:
        bad.append(f"{name}: no throughput")
    if "<svg" not in open(os.path.join(out, name, "report.html")).read():
        bad.append(f"{name}: no chart in report.html")
    print(f"loadtest-ci {name}: {r['throughput']['steady_per_s']:.0f} claims/s steady, "
          f"p99 {lat['p99_ms']:.1f} ms, {r['resources']['pipeline_cpu_us_per_claim']:.0f} us CPU/claim")
if bad:
    print("\n".join(bad)); sys.exit(1)
print("loadtest-ci: 2 passed, 0 failed")
PY
