#!/usr/bin/env bash
# The long crash soak (tests/crash_soak.rs): CLAIMS claims through the local
# pipeline, SIGKILLed KILLS times at random points and restarted, then
# compared byte for byte with a clean run of the same input.
#
#   scripts/crash-soak.sh [CLAIMS] [KILLS] [SEED]     (default 200000 25, seed from the clock)
#
# Release build; prints the seed (rerun with it to replay the same kill plan).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clearing/target}"
export CLEARING_KEY_CACHE="${CLEARING_KEY_CACHE:-$HOME/.cache/clearing/keys}"
export CRASH_SOAK_CLAIMS="${1:-200000}" CRASH_SOAK_KILLS="${2:-25}"
[ -n "${3:-}" ] && export CRASH_SOAK_SEED="$3"
exec cargo test --release --locked --test crash_soak -- --ignored --nocapture crash_soak_long
