#!/usr/bin/env bash
# Apache Kafka for development, tests and CI, in KRaft mode, on 127.0.0.1, without Docker.
# Kafka's jars (kafka_2.13 and kafka-tools, pinned below, with their runtime dependencies) are
# resolved once by Maven into a cache outside the checkout; nothing is downloaded any other way.
#
#   ops/broker.sh install                 resolve the jars (once; Java 17 and Maven needed)
#   ops/broker.sh start                   one combined broker/controller on 127.0.0.1:9092
#   ops/broker.sh ensure                  start unless already up (what the tests call; locked)
#   ops/broker.sh cluster start           three brokers on 9092-9094, a three-voter controller
#                                         quorum, replication factor 3, min.insync.replicas=2
#   ops/broker.sh stop | status           every node of this directory's broker or cluster
#   ops/broker.sh kill N | restart N      SIGKILL node N (1-3) / start it again (after a stop or kill)
#   ops/broker.sh logs [N]                the node's log (tail)
#   ops/broker.sh url                     the bootstrap list, e.g. 127.0.0.1:9092,127.0.0.1:9093,…
#   ops/broker.sh tool CLASS ARGS…        a Kafka tool from the same jars, e.g.
#       ops/broker.sh tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server …
#
# Environment:
#   CLEARING_BROKER_DIR   where the node directories, pids and logs live
#                         (default ~/.cache/clearing/kafka/run); one broker or cluster per directory
#   CLEARING_BROKER_PORT  the first broker port (9092; a cluster takes three in a row)
#   CLEARING_BROKER_PORTS / CLEARING_CONTROLLER_PORTS  explicit comma lists, one per node
#                         (controllers default to broker port + 10000, or free ports)
#   CLEARING_BROKER_HEAP  the JVM heap per node (default 512m, 384m in a cluster)
#   CLEARING_KAFKA_HOME   the jar cache (default ~/.cache/clearing/kafka/VERSION)
set -euo pipefail

KAFKA_VERSION=4.1.1
LOG4J_VERSION=2.24.3
KAFKA_HOME="${CLEARING_KAFKA_HOME:-$HOME/.cache/clearing/kafka/$KAFKA_VERSION}"
LIBS="$KAFKA_HOME/libs"
DIR="${CLEARING_BROKER_DIR:-$HOME/.cache/clearing/kafka/run}"
# The largest record the pipeline writes (the Kafka bus's MAX_RECORD_BYTES, 4 MiB) plus its
# framing: Apache Kafka's default (1 MB) would refuse a large dead letter at delivery.
MAX_MESSAGE_BYTES=4259840

die() { echo "ops/broker.sh: $*" >&2; exit 2; }

# The dependency list, in a POM the script writes: the stamp beside the jars is its hash, so a
# changed version re-resolves and an interrupted resolution is never taken for a complete one.
pom() {
  cat <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>clearing.ops</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
}

install() {
  local want
  want="$(pom | sha256sum | cut -d' ' -f1)"
  [ "$(cat "$LIBS/.complete" 2>/dev/null)" = "$want" ] && return 0
  command -v java >/dev/null || die "Apache Kafka $KAFKA_VERSION needs Java 17 or later (apt-get install openjdk-17-jre-headless)"
  command -v mvn >/dev/null || die "resolving Kafka's jars needs Maven (apt-get install maven)"
  mkdir -p "$KAFKA_HOME"
  exec 8>"$KAFKA_HOME/.install.lock"
  flock 8
  [ "$(cat "$LIBS/.complete" 2>/dev/null)" = "$want" ] && { exec 8>&-; return 0; }
  echo "resolving Apache Kafka $KAFKA_VERSION's jars with Maven into $LIBS (once, about a minute)" >&2
  pom >"$KAFKA_HOME/pom.xml"
  rm -rf "$LIBS"
  mvn -q -B -f "$KAFKA_HOME/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$LIBS" >"$KAFKA_HOME/mvn.log" 2>&1 \
    || { tail -30 "$KAFKA_HOME/mvn.log" >&2; die "Maven could not resolve Kafka's jars (log: $KAFKA_HOME/mvn.log)"; }
  cat >"$KAFKA_HOME/log4j2.yaml" <<'EOF'
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Logger:
      - name: kafka.server.KafkaServer
        level: INFO
      - name: kafka.server.BrokerServer
        level: INFO
      - name: org.apache.kafka.controller.QuorumController
        level: INFO
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
EOF
  echo "$want" >"$LIBS/.complete"
  exec 8>&-
}

java_run() { # class args… (a foreground JVM: the tools)
  java -Xms64m -Xmx256m -Dlog4j2.configurationFile="$KAFKA_HOME/log4j2.yaml" \
    -cp "$LIBS/*" "$@"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The layout of this directory's broker: how many nodes, their ports. Written once, by the
# first start; every later verb reads it, so a restart finds the same ports.
layout() { # nodes
  local n="$1" base="${CLEARING_BROKER_PORT:-9092}" i
  mkdir -p "$DIR"
  if [ -f "$DIR/layout" ]; then
    # shellcheck disable=SC1091
    . "$DIR/layout"
    [ "$NODES" = "$n" ] || die "$DIR holds a $NODES-node broker; 'ops/broker.sh stop' and remove it for a $n-node one"
    return 0
  fi
  local brokers=() controllers=()
  if [ -n "${CLEARING_BROKER_PORTS:-}" ]; then IFS=, read -ra brokers <<<"$CLEARING_BROKER_PORTS"
  else for ((i = 0; i < n; i++)); do brokers+=($((base + i))); done; fi
  if [ -n "${CLEARING_CONTROLLER_PORTS:-}" ]; then IFS=, read -ra controllers <<<"$CLEARING_CONTROLLER_PORTS"
  else
    for ((i = 0; i < n; i++)); do
      local c=$((brokers[i] + 10000))
      if [ "$c" -gt 65535 ] || port_open "$c"; then c="$(free_port)"; fi
      controllers+=("$c")
    done
  fi
  [ "${#brokers[@]}" = "$n" ] && [ "${#controllers[@]}" = "$n" ] || die "$n broker and controller ports needed"
  {
    echo "NODES=$n"
    echo "BROKER_PORTS=(${brokers[*]})"
    echo "CONTROLLER_PORTS=(${controllers[*]})"
    echo "CLUSTER_ID=$(java_run kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
  } >"$DIR/layout.new"
  mv "$DIR/layout.new" "$DIR/layout"
  # shellcheck disable=SC1091
  . "$DIR/layout"
}

read_layout() {
  [ -f "$DIR/layout" ] || return 1
  # shellcheck disable=SC1091
  . "$DIR/layout"
}

node_dir() { echo "$DIR/node-$1"; }
pid_of() { cat "$(node_dir "$1")/pid" 2>/dev/null; }
node_running() { local pid; pid="$(pid_of "$1")" && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

configure() { # node
  local id="$1" nd voters="" i rf isr
  nd="$(node_dir "$id")"
  for ((i = 0; i < NODES; i++)); do
    voters+="${voters:+,}$((i + 1))@127.0.0.1:${CONTROLLER_PORTS[i]}"
  done
  if [ "$NODES" -ge 3 ]; then rf=3; isr=2; else rf=1; isr=1; fi
  mkdir -p "$nd/data"
  cat >"$nd/server.properties" <<EOF
# Written by ops/broker.sh; regenerated at every start.
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:${BROKER_PORTS[id - 1]},CONTROLLER://127.0.0.1:${CONTROLLER_PORTS[id - 1]}
advertised.listeners=PLAINTEXT://127.0.0.1:${BROKER_PORTS[id - 1]}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$nd/data
# Topics are created by the pipeline, never by a first produce or fetch.
auto.create.topics.enable=false
num.partitions=4
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
unclean.leader.election.enable=false
message.max.bytes=$MAX_MESSAGE_BYTES
replica.fetch.max.bytes=$MAX_MESSAGE_BYTES
# Tests and soaks form groups often: no initial delay before the first assignment.
group.initial.rebalance.delay.ms=0
# Two cores: fewer threads than the server defaults (3 network, 8 I/O).
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=2
log.cleaner.threads=1
EOF
  if [ ! -f "$nd/data/meta.properties" ]; then
    java_run kafka.tools.StorageTool format --ignore-formatted -t "$CLUSTER_ID" \
      -c "$nd/server.properties" >"$nd/format.log" 2>&1 \
      || { cat "$nd/format.log" >&2; die "formatting node $id's storage failed"; }
  fi
}

launch() { # node
  local id="$1" nd heap
  nd="$(node_dir "$id")"
  if node_running "$id"; then return 0; fi
  port_open "${BROKER_PORTS[id - 1]}" \
    && die "port ${BROKER_PORTS[id - 1]} is taken by another process (not this directory's broker: $DIR)"
  configure "$id"
  if [ "$NODES" -ge 3 ]; then heap="${CLEARING_BROKER_HEAP:-384m}"; else heap="${CLEARING_BROKER_HEAP:-512m}"; fi
  # exec: the recorded pid is the JVM's own, so kill and stop reach it. The JVM must not
  # inherit the lock descriptors (8, 9): it would hold the locks for as long as it runs.
  (cd "$nd" && exec nohup java -Xms128m -Xmx"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_HOME/log4j2.yaml" \
      -cp "$LIBS/*" kafka.Kafka "$nd/server.properties" >>"$nd/server.log" 2>&1 </dev/null 8>&- 9>&-) &
  echo $! >"$nd/pid"
}

await() { # node…: each listens on its broker port
  local id
  for id in "$@"; do
    for _ in $(seq 1 600); do
      port_open "${BROKER_PORTS[id - 1]}" && continue 2
      node_running "$id" || { tail -30 "$(node_dir "$id")/server.log" >&2; die "node $id exited (log: $(node_dir "$id")/server.log)"; }
      sleep 0.1
    done
    die "node $id did not listen on ${BROKER_PORTS[id - 1]} within 60 s (log: $(node_dir "$id")/server.log)"
  done
}

bootstrap() {
  local i out=""
  for ((i = 0; i < NODES; i++)); do out+="${out:+,}127.0.0.1:${BROKER_PORTS[i]}"; done
  echo "$out"
}

start_nodes() { # count
  install
  layout "$1"
  local ids=() i
  for ((i = 1; i <= NODES; i++)); do launch "$i"; ids+=("$i"); done
  await "${ids[@]}"
  echo "Apache Kafka $KAFKA_VERSION, $NODES node(s), up on $(bootstrap) (data and logs in $DIR)"
}

stop_node() { # node [signal]
  local id="$1" signal="${2:-TERM}" pid
  pid="$(pid_of "$id")" || return 0
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -s "$signal" "$pid" 2>/dev/null || true
    # A controlled shutdown moves leadership away first: it can take a few seconds.
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$(node_dir "$id")/pid"
}

stop_all() {
  read_layout || return 0
  local i
  for ((i = NODES; i >= 1; i--)); do stop_node "$i" & done
  wait
}

status() {
  read_layout || { echo "stopped (no broker in $DIR)"; return 3; }
  local i up=0
  for ((i = 1; i <= NODES; i++)); do
    if node_running "$i"; then
      echo "node $i: running (pid $(pid_of "$i")) on 127.0.0.1:${BROKER_PORTS[i - 1]}"; up=$((up + 1))
    else
      echo "node $i: stopped"
    fi
  done
  [ "$up" -gt 0 ] || return 3
}

node_arg() {
  read_layout || die "no broker in $DIR"
  [[ "${1:-}" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$NODES" ] || die "a node number from 1 to $NODES"
}

case "${1:-}" in
  install) install ;;
  start) start_nodes 1 ;;
  ensure)
    # The tests' entry: one broker for all test binaries, started once under a lock.
    mkdir -p "$DIR"
    exec 9>"$DIR/.ensure.lock"
    flock 9
    if read_layout && node_running 1; then
      ids=(); for ((i = 1; i <= NODES; i++)); do ids+=("$i"); done
      for i in "${ids[@]}"; do launch "$i"; done
      await "${ids[@]}"
      bootstrap
    else
      start_nodes "$(read_layout && echo "$NODES" || echo 1)" >&2
      bootstrap
    fi
    ;;
  cluster)
    case "${2:-}" in
      start) start_nodes 3 ;;
      stop) stop_all ;;
      *) die "usage: ops/broker.sh cluster start|stop" ;;
    esac
    ;;
  stop) stop_all ;;
  status) status ;;
  kill) node_arg "${2:-}"; stop_node "$2" KILL ;;
  restart)
    node_arg "${2:-}"
    stop_node "$2"
    install
    launch "$2"
    await "$2"
    ;;
  logs)
    read_layout || die "no broker in $DIR"
    tail -n "${LINES:-50}" "$(node_dir "${2:-1}")/server.log"
    ;;
  url) read_layout || die "no broker in $DIR"; bootstrap ;;
  tool) shift; install; java_run "$@" ;;
  *) sed -n '2,25p' "$0" >&2; exit 2 ;;
esac
