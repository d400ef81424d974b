#!/usr/bin/env bash
# A Kafka-protocol broker for development and CI: tansu with its SQLite store,
# on 127.0.0.1. Installed once into a cache outside the checkout and reused.
#   ops/broker.sh install | start | stop | status | restart
# Environment: CLEARING_BROKER_PORT (9092), CLEARING_BROKER_DIR (~/.cache/clearing/broker),
#              CLEARING_TANSU_ROOT (~/.cache/clearing/tansu).
set -euo pipefail

TANSU_VERSION=0.6.0
# The published crates' SHA-256 (crates.io index `cksum`), checked before building.
TANSU_SHA256=4fdd85473ec265140488cf8d55e82b844f5c051c8916fabdd4a71156ac053f6d
TANSU_BROKER_SHA256=93c1e91b40c2a706dfdbe9a795c08c70918c874ad23f6e0e87564cc0a180e720
# Our fix to tansu 0.6's group coordinator (ops/tansu/README.md): the broker is rebuilt
# whenever this patch changes, which the stamp beside the binary records.
PATCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/tansu/coordinator.patch"
ROOT="${CLEARING_TANSU_ROOT:-$HOME/.cache/clearing/tansu}"
BIN="$ROOT/bin/tansu"
STAMP="$ROOT/bin/tansu.patch.sha256"
PORT="${CLEARING_BROKER_PORT:-9092}"
DIR="${CLEARING_BROKER_DIR:-$HOME/.cache/clearing/broker}"
PIDFILE="$DIR/tansu.pid"
LOG="$DIR/tansu.log"

fetch_crate() { # name version sha256 into-dir
  curl -fsSL --retry 3 "https://static.crates.io/crates/$1/$2/download" -o "$4/$1-$2.crate"
  echo "$3  $4/$1-$2.crate" | sha256sum -c --quiet
  tar -xzf "$4/$1-$2.crate" -C "$4"
}

install() {
  local want
  want="$(sha256sum "$PATCH" | cut -d' ' -f1)"
  if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] \
      && "$BIN" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    return 0
  fi
  echo "building tansu $TANSU_VERSION (libsql store) with ops/tansu/coordinator.patch into $ROOT:" \
       "10 to 25 minutes on 2 cores, once" >&2
  local tool
  for tool in curl tar patch sha256sum cargo; do
    command -v "$tool" >/dev/null || { echo "building tansu needs $tool" >&2; return 2; }
  done
  local src="$ROOT/src"
  rm -rf "$src" && mkdir -p "$src" "$ROOT/bin"
  fetch_crate tansu "$TANSU_VERSION" "$TANSU_SHA256" "$src"
  fetch_crate tansu-broker "$TANSU_VERSION" "$TANSU_BROKER_SHA256" "$src"
  patch -d "$src/tansu-broker-$TANSU_VERSION" -p1 --forward --quiet <"$PATCH"
  # The binary crate's own Cargo.lock pins every other dependency; only the broker
  # library is taken from the patched source.
  printf '\n[patch.crates-io]\ntansu-broker = { path = "../tansu-broker-%s" }\n' "$TANSU_VERSION" \
    >>"$src/tansu-$TANSU_VERSION/Cargo.toml"
  # The build products stay in the cache: a changed patch rebuilds two crates, not 600.
  (cd "$src/tansu-$TANSU_VERSION" \
    && CARGO_TARGET_DIR="$ROOT/target" cargo build --release --features libsql --bin tansu >&2)
  cp "$ROOT/target/release/tansu" "$BIN.new" && mv "$BIN.new" "$BIN"
  echo "$want" >"$STAMP"
}

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

start() {
  install
  mkdir -p "$DIR"
  if running; then
    echo "tansu already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"
    return 0
  fi
  # The SQLite path is relative to the working directory (design.md §4).
  # exec: the recorded pid is tansu's own, so stop and restart reach it.
  (cd "$DIR" && exec nohup "$BIN" broker \
      --storage-engine "sqlite://tansu.db" \
      --listener-url "tcp://127.0.0.1:$PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$PORT" \
      >"$LOG" 2>&1) &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      echo "tansu started (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT, data in $DIR"
      return 0
    fi
    running || { echo "tansu exited; see $LOG" >&2; tail -20 "$LOG" >&2; return 1; }
    sleep 0.1
  done
  echo "tansu did not listen on $PORT within 10 s; see $LOG" >&2
  return 1
}

stop() {
  if running; then
    kill "$(cat "$PIDFILE")"
    for _ in $(seq 1 50); do running || break; sleep 0.1; done
    running && kill -9 "$(cat "$PIDFILE")"
  fi
  rm -f "$PIDFILE"
}

status() {
  if running; then echo "running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; else echo "stopped"; return 3; fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|restart|status" >&2; exit 2 ;;
esac
