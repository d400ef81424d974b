#!/usr/bin/env bash
# The long crash soaks (tests/crash_soak.rs, tests/crash_soak_kafka.rs): claims
# through the pipeline, SIGKILLed at random points and restarted, then compared
# byte for byte with a clean run of the same input (docs/reliability.md).
#
#   scripts/crash-soak.sh [CLAIMS] [KILLS] [SEED]          local log (default 200000 25)
#   scripts/crash-soak.sh power [CLAIMS] [KILLS] [SEED]    local log, half of the kills power losses
#                                                          (CLEARING_FAULT_CRASH_IMAGE: the log and the
#                                                          stores turned into their crash images before
#                                                          the restart; default 100000 30)
#   scripts/crash-soak.sh kafka [CLAIMS] [KILLS] [SEED]    Apache Kafka, one process per stage,
#                                                          its own broker (default 6000 24);
#                                                          CRASH_SOAK_CLUSTER=1: three brokers,
#                                                          CRASH_SOAK_PAUSE=1: a member SIGSTOPped
#
# Release build; prints the seed (rerun with it to replay the same kill plan).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clearing/target}"
export CLEARING_KEY_CACHE="${CLEARING_KEY_CACHE:-$HOME/.cache/clearing/keys}"
test=crash_soak
name=crash_soak_long
defaults=(200000 25)
if [ "${1:-}" = kafka ]; then
    shift
    test=crash_soak_kafka
    name=crash_soak_kafka
    defaults=(6000 24)
elif [ "${1:-}" = power ]; then
    shift
    name=power_loss_soak_long
    defaults=(100000 30)
fi
export CRASH_SOAK_CLAIMS="${1:-${defaults[0]}}" CRASH_SOAK_KILLS="${2:-${defaults[1]}}"
if [ -n "${3:-}" ]; then export CRASH_SOAK_SEED="$3"; fi
exec cargo test --release --locked --test "$test" -- --ignored --nocapture "$name"
