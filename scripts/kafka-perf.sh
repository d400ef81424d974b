#!/usr/bin/env bash
# The pipeline on Apache Kafka against the broker's bare pass-through, in one run
# (docs/performance.md, "Apache Kafka"): a broker of its own (one node, or a three-node
# cluster with replication factor 3 and min.insync.replicas=2) on free ports in a
# temporary directory; `clearing loadtest` flat out (the pipeline, then the pass-through
# loop of the same records on the same broker), and at 100x and 30x the billion-a-year mean; the
# brokers' CPU per claim read from /proc around each run.
#   scripts/kafka-perf.sh [single|cluster] [CLAIMS] [OUT_DIR]      (default: single 20000)
# Environment: CLEARING (the binary; default: the release build, built if missing);
# KAFKA_PERF_PROFILE=1: a fourth run, flat out on the corpus the others made, under a CPU
# profile of the pipeline (perf, timer samples; the brokers' share is their /proc CPU), by
# thread, library and function in OUT_DIR/profile.profile.txt;
# CLEARING_KAFKA_TRANSACTIONS=0: the stages write without transactions (what the fence costs).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="${1:-single}"
CLAIMS="${2:-20000}"
OUT="${3:-${TMPDIR:-/tmp}/clearing-kafka-perf-$MODE}"
export CLEARING_KEY_CACHE="${CLEARING_KEY_CACHE:-$HOME/.cache/clearing/keys}"
BIN="${CLEARING:-}"
if [ -z "$BIN" ]; then
  cargo build --release --quiet --bin clearing
  BIN="${CARGO_TARGET_DIR:-target}/release/clearing"
fi
case "$MODE" in
  single) NODES=1; START=(start) ;;
  cluster) NODES=3; START=(cluster start) ;;
  *) echo "usage: $0 [single|cluster] [CLAIMS] [OUT_DIR]" >&2; exit 2 ;;
esac

rm -rf "$OUT"
mkdir -p "$OUT"
export CLEARING_BROKER_DIR="$OUT/broker"
ports=$(python3 -c "
import socket
ss = [socket.socket() for _ in range(2 * $NODES)]
for s in ss: s.bind(('127.0.0.1', 0))
print(' '.join(str(s.getsockname()[1]) for s in ss))")
read -ra p <<<"$ports"
export CLEARING_BROKER_PORTS="$(IFS=,; echo "${p[*]:0:NODES}")"
export CLEARING_CONTROLLER_PORTS="$(IFS=,; echo "${p[*]:NODES}")"
trap 'ops/broker.sh stop >/dev/null 2>&1 || true' EXIT
ops/broker.sh "${START[@]}" >&2
BOOTSTRAP="$(ops/broker.sh url)"

broker_cpu_s() { # utime + stime of every node's JVM, in seconds
  local total=0 f
  for f in "$CLEARING_BROKER_DIR"/node-*/pid; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$(cat "$f")/stat")))
  done
  echo "$total $(getconf CLK_TCK)" | awk '{printf "%.2f", $1 / $2}'
}

run() { # name, loadtest arguments…
  local name=$1 before after
  shift
  before=$(broker_cpu_s)
  echo "kafka-perf: $name on $BOOTSTRAP" >&2
  local profile=()
  if [ "$name" = profile ]; then
    profile=(perf record -e cpu-clock -F 499 -g -o "$OUT/$name.perf.data" --)
  fi
  "${profile[@]}" "$BIN" loadtest --bus "kafka://$BOOTSTRAP/perf-$name" --claims "$CLAIMS" \
    --corpus "$OUT/corpus" --out "$OUT/$name" --drain-timeout 600 "$@" >"$OUT/$name.txt"
  if [ ${#profile[@]} -gt 0 ]; then
    { echo "== the pipeline's CPU samples by thread"
      perf report -i "$OUT/$name.perf.data" --stdio --no-children --sort comm -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -25 || true
      echo "== by library"
      perf report -i "$OUT/$name.perf.data" --stdio --no-children --sort dso -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15 || true
      echo "== by function"
      perf report -i "$OUT/$name.perf.data" --stdio --no-children --sort sym -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 || true
    } >"$OUT/$name.profile.txt"
  fi
  after=$(broker_cpu_s)
  echo "$before $after" >"$OUT/$name.broker-cpu"
  # Records on every topic of the run (topic:partition:end offset): the record
  # operations a claim costs the broker.
  ops/broker.sh tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOTSTRAP" \
    --topic-partitions "^perf-$name\\..*" 2>/dev/null >"$OUT/$name.offsets"
}

run flat-out --passthrough-records "$((CLAIMS * 2))" --verify-claims 1000
run rate-100x --rate 3169 --no-raw
# Below saturation: on two shared cores the broker and the pipeline together top out near
# 100x the mean, so 30x shows the latency of a pipeline that keeps up.
run rate-30x --rate 951 --no-raw
if [ "${KAFKA_PERF_PROFILE:-0}" = 1 ]; then
  run profile --no-raw
fi

python3 - "$OUT" "$MODE" "$CLAIMS" <<'PY'
import json, os, sys
out, mode, claims = sys.argv[1], sys.argv[2], int(sys.argv[3])
summary = {"mode": mode, "claims": claims}
for name in ["flat-out", "rate-100x", "rate-30x"]:
    r = json.load(open(os.path.join(out, name, "report.json")))
    before, after = map(float, open(os.path.join(out, name + ".broker-cpu")).read().split())
    run, lat, thr = r["run"], r["latency"], r["throughput"]
    row = {
        "complete": run["complete"],
        "steady_per_s": thr["steady_per_s"],
        "p50_ms": lat["p50_ms"],
        "p99_ms": lat["p99_ms"],
        "pipeline_cpu_us_per_claim": r["resources"]["pipeline_cpu_us_per_claim"],
        # Includes the pass-through loop's records on the flat-out run.
        "broker_cpu_s": round(after - before, 2),
    }
    written = {}
    for line in open(os.path.join(out, name + ".offsets")):
        topic, _, end = line.strip().rsplit(":", 2)
        topic = topic.split(".", 1)[1]
        written[topic] = written.get(topic, 0) + int(end)
    loop = {t: n for t, n in written.items() if "passthrough" in t}
    pipeline = {t: n for t, n in written.items() if t not in loop}
    row["records_written_per_claim"] = round(sum(pipeline.values()) / claims, 2)
    row["records_written_by_topic"] = pipeline
    pt = (r.get("raw") or {}).get("bus_passthrough")
    if pt:
        row["passthrough_per_s"] = pt["per_s"]
        row["pipeline_vs_passthrough"] = thr["steady_per_s"] / pt["per_s"]
    summary[name] = row
    line = (f"kafka-perf {mode} {name}: {thr['steady_per_s']:.0f} claims/s steady, "
            f"p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, "
            f"{row['pipeline_cpu_us_per_claim']:.0f} us pipeline CPU/claim, "
            f"brokers {row['broker_cpu_s']:.1f} CPU-s, "
            f"{row['records_written_per_claim']:.2f} records written per claim")
    if pt:
        line += (f"; pass-through {pt['per_s']:.0f} records/s, "
                 f"pipeline = {100 * row['pipeline_vs_passthrough']:.1f} % of it")
    print(line)
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
print(f"kafka-perf: {os.path.join(out, 'summary.json')}")
PY
