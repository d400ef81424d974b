#!/usr/bin/env bash
# Ours against a Kafka Streams peer (benches/peer) on one broker, the same claims, the same
# cores, one after the other (issue 22; docs/performance.md opens with the table):
#   ours flat out, ours at 100x the billion-a-year mean (3,169 claims/s), then the peer at
#   exactly_once_v2 and at at_least_once, each flat out and at 100x, fed the claims ours' run
#   recorded on fse.submitted, each to the partition ours gave it.
# Per run: steady throughput, p50/p99 latency (from the claim's due time by the schedule to
# reading its decision), the process's CPU per claim and peak RSS, the broker's CPU, and the
# decisions (accepted, rejected by code) so that a reader sees both did the same work.
#   scripts/peer-compare.sh [CLAIMS] [OUT_DIR]        (default: 20000)
# Writes OUT_DIR/peer-compare.json and OUT_DIR/peer-compare.html. Exits non-zero only on a
# broken run (a run that did not decide every claim), never on a ratio.
# Environment: CLEARING (our binary; default: the release build, built if missing);
# PEER_HEAP (the peer JVM's -Xmx, default 1g); PEER_THREADS (stream threads, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

CLAIMS="${1:-20000}"
OUT="${2:-${TMPDIR:-/tmp}/clearing-peer-compare}"
RATE=3169
export CLEARING_KEY_CACHE="${CLEARING_KEY_CACHE:-$HOME/.cache/clearing/keys}"
BIN="${CLEARING:-}"
if [ -z "$BIN" ]; then
  cargo build --release --quiet --bin clearing
  BIN="${CARGO_TARGET_DIR:-target}/release/clearing"
fi
JAR=benches/peer/target/clearing-peer.jar
echo "peer-compare: building the peer (mvn package, its tests included)" >&2
mvn -q -B -f benches/peer/pom.xml package >"${TMPDIR:-/tmp}/peer-mvn.log" 2>&1 \
  || { tail -40 "${TMPDIR:-/tmp}/peer-mvn.log" >&2; echo "peer-compare: the peer did not build" >&2; exit 1; }
grep -h "Tests run:" benches/peer/target/surefire-reports/*.txt 2>/dev/null >&2 || true

rm -rf "$OUT"
mkdir -p "$OUT"
export CLEARING_BROKER_DIR="$OUT/broker"
read -ra p <<<"$(python3 -c "
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(('127.0.0.1', 0))
print(' '.join(str(s.getsockname()[1]) for s in ss))")"
export CLEARING_BROKER_PORTS="${p[0]}" CLEARING_CONTROLLER_PORTS="${p[1]}"
PEER_PID=
cleanup() {
  [ -n "$PEER_PID" ] && kill "$PEER_PID" 2>/dev/null && wait "$PEER_PID" 2>/dev/null
  ops/broker.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
ops/broker.sh start >&2
BOOTSTRAP="$(ops/broker.sh url)"

broker_cpu_s() {
  awk -v tck="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / tck}' \
    "/proc/$(cat "$CLEARING_BROKER_DIR"/node-1/pid)/stat"
}
proc_cpu_s() { awk -v tck="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / tck}' "/proc/$1/stat"; }
peak_rss_mb() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

ours() { # name, loadtest arguments…
  local name=$1 before
  shift
  before=$(broker_cpu_s)
  echo "peer-compare: ours, $name" >&2
  "$BIN" loadtest --bus "kafka://$BOOTSTRAP/cmp-ours-$name" --claims "$CLAIMS" \
    --corpus "$OUT/corpus" --out "$OUT/ours-$name" --drain-timeout 600 --no-raw "$@" \
    >"$OUT/ours-$name.txt"
  echo "$before $(broker_cpu_s)" >"$OUT/ours-$name.broker-cpu"
}

peer() { # guarantee, name, rate
  local guarantee=$1 name=$2 rate=$3 prefix="cmp-peer-$1-$2" before cpu0
  echo "peer-compare: peer $guarantee, $name" >&2
  java -jar "$JAR" topics --bootstrap "$BOOTSTRAP" --prefix "$prefix"
  rm -f "$OUT/peer.ready"
  java -Xms256m -Xmx"${PEER_HEAP:-1g}" -jar "$JAR" run --bootstrap "$BOOTSTRAP" --prefix "$prefix" \
    --refs cmp-ours-flat-out --guarantee "$guarantee" --threads "${PEER_THREADS:-2}" \
    --state-dir "$OUT/peer-state-$guarantee-$name" --ready "$OUT/peer.ready" \
    >"$OUT/peer-$guarantee-$name.log" 2>&1 &
  PEER_PID=$!
  for _ in $(seq 1 900); do
    [ -s "$OUT/peer.ready" ] && break
    kill -0 "$PEER_PID" 2>/dev/null || { cat "$OUT/peer-$guarantee-$name.log" >&2; exit 1; }
    sleep 0.2
  done
  [ -s "$OUT/peer.ready" ] || { echo "peer-compare: the peer did not start" >&2; exit 1; }
  before=$(broker_cpu_s)
  cpu0=$(proc_cpu_s "$PEER_PID")
  java -Xmx512m -jar "$JAR" drive --bootstrap "$BOOTSTRAP" --from cmp-ours-flat-out.fse.submitted \
    --prefix "$prefix" --claims "$CLAIMS" --rate "$rate" --out "$OUT/peer-$guarantee-$name.json" \
    >/dev/null || echo "peer-compare: the peer's $guarantee $name run is incomplete" >&2
  echo "$before $(broker_cpu_s) $cpu0 $(proc_cpu_s "$PEER_PID") $(peak_rss_mb "$PEER_PID")" \
    >"$OUT/peer-$guarantee-$name.cpu"
  kill "$PEER_PID"
  wait "$PEER_PID" 2>/dev/null || true
  PEER_PID=
}

ours flat-out
ours rate-100x --rate "$RATE"
for guarantee in exactly_once_v2 at_least_once; do
  peer "$guarantee" flat-out 0
  peer "$guarantee" rate-100x "$RATE"
done

python3 scripts/peer-compare.py "$OUT" "$CLAIMS" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
