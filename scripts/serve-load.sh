#!/usr/bin/env bash
# The online services under load (docs/performance.md, "Online services"): a synthetic
# world on a local log, `clearing serve` on it (the seven stages running beside the API),
# then wrk (Debian's package) from a second process over loopback:
#   1. rights look-ups (POST /v1/rights), each for another beneficiary of the world;
#   2. the intake (POST /v1/lots), lots of 100 FSEs, each lot under a new id.
# wrk's own report (requests/s, latency percentiles) goes to OUT_DIR/*.txt.
#   scripts/serve-load.sh [CLAIMS] [SECONDS] [CONNECTIONS] [OUT_DIR]   (default: 20000 20 32)
# Environment: CLEARING (the binary; default: the release build, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

CLAIMS="${1:-20000}"
SECONDS_EACH="${2:-20}"
CONNECTIONS="${3:-32}"
OUT="${4:-${TMPDIR:-/tmp}/clearing-serve-load}"
export CLEARING_KEY_CACHE="${CLEARING_KEY_CACHE:-$HOME/.cache/clearing/keys}"
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)"; exit 2; }
command -v jq >/dev/null || { echo "jq is required (apt-get install jq)"; exit 2; }
BIN="${CLEARING:-}"
if [ -z "$BIN" ]; then
  cargo build --release --quiet --bin clearing
  BIN="${CARGO_TARGET_DIR:-target}/release/clearing"
fi
SCRIPTS="$(pwd)/scripts/serve-load"

rm -rf "$OUT" && mkdir -p "$OUT"
"$BIN" gen --seed 3 --claims "$CLAIMS" --out "$OUT/gen" >/dev/null
BUS="local:$OUT/bus"
"$BIN" publish --bus "$BUS" --topic ref.rights < "$OUT/gen/rights.jsonl" 2>/dev/null
"$BIN" publish --bus "$BUS" --topic ref.pki < "$OUT/gen/pki.jsonl" 2>/dev/null
"$BIN" publish --bus "$BUS" --topic ref.eu.institutions < "$OUT/gen/eu_institutions.jsonl" 2>/dev/null
"$BIN" submit --ingest-clock simulated --bus "$BUS" < "$OUT/gen/claims.jsonl" 2>/dev/null

# The bodies wrk sends: one look-up per beneficiary (care in the middle of the world's
# period), and one lot of the first 100 claims.
jq -c '{nir, birth_date, rank, date: "2025-03-15"}' "$OUT/gen/rights.jsonl" > "$OUT/rights-bodies.jsonl"
head -100 "$OUT/gen/claims.jsonl" | jq -cs '.' > "$OUT/lot-fses.json"

# Unsigned questions (--auth none): wrk cannot sign; a signed question costs one signature
# check more (docs/performance.md, "Online services").
"$BIN" serve --bus "$BUS" --listen 127.0.0.1:0 --max-in-flight 1024 --auth none > "$OUT/serve.out" 2> "$OUT/serve.err" &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true; wait $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  ADDR="$(sed -n 's/^clearing serve: listening on //p' "$OUT/serve.out")"
  [ -n "$ADDR" ] && curl -sf "http://$ADDR/health" | jq -e '.rights_partitions | length > 0' >/dev/null && break
  sleep 0.2
done
echo "serve on $ADDR; the stages apply the $CLAIMS claims while the look-ups run" >&2

BODIES="$OUT/rights-bodies.jsonl" wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency \
  -s "$SCRIPTS/rights.lua" "http://$ADDR" | tee "$OUT/rights.txt"
FSES="$OUT/lot-fses.json" wrk -t2 -c"$((CONNECTIONS / 4 > 0 ? CONNECTIONS / 4 : 1))" -d"${SECONDS_EACH}s" --latency \
  -s "$SCRIPTS/lots.lua" "http://$ADDR" | tee "$OUT/lots.txt"
echo "reports: $OUT/rights.txt $OUT/lots.txt" >&2
