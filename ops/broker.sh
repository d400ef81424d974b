#!/usr/bin/env bash
# A Kafka-protocol broker for development and CI: tansu with its SQLite store,
# on 127.0.0.1. Installed once into a cache outside the checkout and reused.
#   ops/broker.sh install | start | stop | status | restart
# Environment: CLEARING_BROKER_PORT (9092), CLEARING_BROKER_DIR (~/.cache/clearing/broker),
#              CLEARING_TANSU_ROOT (~/.cache/clearing/tansu).
set -euo pipefail

TANSU_VERSION=0.6.0
ROOT="${CLEARING_TANSU_ROOT:-$HOME/.cache/clearing/tansu}"
BIN="$ROOT/bin/tansu"
PORT="${CLEARING_BROKER_PORT:-9092}"
DIR="${CLEARING_BROKER_DIR:-$HOME/.cache/clearing/broker}"
PIDFILE="$DIR/tansu.pid"
LOG="$DIR/tansu.log"

install() {
  if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    return 0
  fi
  echo "installing tansu $TANSU_VERSION (libsql store) into $ROOT: about 10 minutes on 2 cores, once" >&2
  cargo install tansu --version "$TANSU_VERSION" --features libsql --locked --root "$ROOT" >&2
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
