#!/usr/bin/env bash
# The online services under load (docs/performance.md, "Online services"): a synthetic
# world on a local log, `clearing serve` on it (the seven stages running beside the API),
# then wrk (Debian's package) from a second process over loopback:
#   1. rights look-ups (POST /v1/rights), each for another beneficiary of the world;
#   2. the intake (POST /v1/lots), lots of 100 FSEs, each lot under a new id.
# wrk's own report (requests/s, latency percentiles) goes to OUT_DIR/*.txt.
# Then at a fixed rate (examples/serve_rate.rs: an open loop, each latency from the time the
# request was due, which wrk cannot do), on a fresh log with the references only:
#   3. look-ups at RATE/s (default 5,000) while lots of 100 FSEs come in at LOTS/s (default 10,
#      1,000 FSEs/s), so that the stages run through the whole measurement;
#   4. the same look-ups signed by a professional's card (--auth signed), flat out: RATE_SIGNED/s
#      (default 2,000).
#   scripts/serve-load.sh [CLAIMS] [SECONDS] [CONNECTIONS] [OUT_DIR]   (default: 20000 20 32)
# Environment: CLEARING (the binary; default: the release build, built if missing), RATE, LOTS,
# RATE_SIGNED, SKIP_WRK=1 (the fixed-rate runs only), SERVE_FLAGS (more `clearing serve` flags
# for every run, e.g. "--stages-nice 0 --lookup-threads 8"; not for a binary without them).
set -euo pipefail
cd "$(dirname "$0")/.."

CLAIMS="${1:-20000}"
SECONDS_EACH="${2:-20}"
CONNECTIONS="${3:-32}"
OUT="${4:-${TMPDIR:-/tmp}/clearing-serve-load}"
export CLEARING_KEY_CACHE="${CLEARING_KEY_CACHE:-$HOME/.cache/clearing/keys}"
[ -n "${SKIP_WRK:-}" ] || command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk), or SKIP_WRK=1"; exit 2; }
command -v jq >/dev/null || { echo "jq is required (apt-get install jq)"; exit 2; }
BIN="${CLEARING:-}"
if [ -z "$BIN" ]; then
  cargo build --release --quiet --bin clearing
  BIN="${CARGO_TARGET_DIR:-target}/release/clearing"
fi
cargo build --release --quiet --example serve_rate
RATE_BIN="${CARGO_TARGET_DIR:-target}/release/examples/serve_rate"
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

# Starts `clearing serve` on $BUS with the flags given; sets SERVE (its pid) and ADDR.
start_serve() {
  # shellcheck disable=SC2086 # SERVE_FLAGS is a list of words
  "$BIN" serve --bus "$BUS" --listen 127.0.0.1:0 --max-in-flight 1024 ${SERVE_FLAGS:-} "$@" > "$OUT/serve.out" 2> "$OUT/serve.err" &
  SERVE=$!
  for _ in $(seq 100); do
    ADDR="$(sed -n 's/^clearing serve: listening on //p' "$OUT/serve.out")"
    # Every partition held (the local log's default of 4), so that no look-up meets a 421.
    [ -n "$ADDR" ] && curl -sf "http://$ADDR/health" | jq -e '.rights_partitions | length >= 4' >/dev/null && break
    sleep 0.2
  done
}
stop_serve() { kill "$SERVE" 2>/dev/null || true; wait "$SERVE" 2>/dev/null || true; }
trap stop_serve EXIT

if [ -z "${SKIP_WRK:-}" ]; then
# Unsigned questions (--auth none), no per-client rate (all come from one address): wrk cannot
# sign; a signed question costs one signature check more (run 4 below).
start_serve --auth none --rate-per-second 0
echo "serve on $ADDR; the stages apply the $CLAIMS claims while the look-ups run" >&2

BODIES="$OUT/rights-bodies.jsonl" wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency \
  -s "$SCRIPTS/rights.lua" "http://$ADDR" | tee "$OUT/rights.txt"
FSES="$OUT/lot-fses.json" wrk -t2 -c"$((CONNECTIONS / 4 > 0 ? CONNECTIONS / 4 : 1))" -d"${SECONDS_EACH}s" --latency \
  -s "$SCRIPTS/lots.lua" "http://$ADDR" | tee "$OUT/lots.txt"
stop_serve
fi

# Fixed rates, on a log with the references only: the lots sent during the run are what the
# stages work on. One lot per line, 100 claims each, each under its own id.
RATE="${RATE:-5000}"
LOTS="${LOTS:-10}"
RATE_SIGNED="${RATE_SIGNED:-2000}"
rm -rf "$OUT/bus"
"$BIN" publish --bus "$BUS" --topic ref.rights < "$OUT/gen/rights.jsonl" 2>/dev/null
"$BIN" publish --bus "$BUS" --topic ref.pki < "$OUT/gen/pki.jsonl" 2>/dev/null
"$BIN" publish --bus "$BUS" --topic ref.eu.institutions < "$OUT/gen/eu_institutions.jsonl" 2>/dev/null
# The load's card, for the signed run: a card of the first claim's professional.
RPPS="$(head -1 "$OUT/gen/claims.jsonl" | jq -r .professional.rpps)"
"$RATE_BIN" card CPS-LOAD "$RPPS" 42 | "$BIN" publish --bus "$BUS" --topic ref.pki 2>/dev/null
jq -c '.' "$OUT/gen/claims.jsonl" | split -l 100 - "$OUT/lot-"
for f in "$OUT"/lot-*; do
  jq -cs --arg id "$(basename "$f")" '{lot_id: $id, fses: .}' "$f"
done > "$OUT/lots.jsonl"
rm -f "$OUT"/lot-*

start_serve --auth none --rate-per-second 0
echo "serve on $ADDR: $RATE look-ups/s while $LOTS lots/s of 100 FSEs go through the stages" >&2
"$RATE_BIN" run "$ADDR" /v1/lots "$OUT/lots.jsonl" "$LOTS" "$SECONDS_EACH" 4 > "$OUT/rate-lots.txt" &
LOADER=$!
"$RATE_BIN" run "$ADDR" /v1/rights "$OUT/rights-bodies.jsonl" "$RATE" "$SECONDS_EACH" 64 | tee "$OUT/rate-rights.txt"
wait "$LOADER"
cat "$OUT/rate-lots.txt"
curl -s "http://$ADDR/health" >/dev/null
stop_serve

# Signed look-ups: each signed by the load's card and checked by the server (--auth signed);
# the per-client rate is off, the one card being the whole load.
start_serve --rate-per-second 0
echo "serve on $ADDR (signed): $RATE_SIGNED look-ups/s" >&2
"$RATE_BIN" run "$ADDR" /v1/rights "$OUT/rights-bodies.jsonl" "$RATE_SIGNED" "$SECONDS_EACH" 64 CPS-LOAD 42 | tee "$OUT/rate-signed.txt"
stop_serve
echo "reports: $OUT/*.txt" >&2
