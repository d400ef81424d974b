#!/usr/bin/env bash
# Runs every fuzz target (every [[bin]] of fuzz/Cargo.toml, `cargo fuzz list`:
# the stage inputs fse.submitted to outbound.ledger, the reference topics, the
# JSON parsers and the identifier checkers) for SECONDS each, one after the
# other, and prints one result line per target. Exits non-zero on the first
# target that finds a crash (the input is kept in fuzz/artifacts/TARGET/).
#
#   scripts/fuzz.sh SECONDS [TARGET...]
#
# cargo-fuzz (libFuzzer, AddressSanitizer) wants a nightly rustc for its -Z
# flags; the machine has one stable toolchain, so RUSTC_BOOTSTRAP=1 lets the
# stable compiler accept them. cargo-fuzz is installed with `cargo install`
# if missing. The corpus grows across runs outside the checkout
# (FUZZ_CORPUS, default ~/.cache/clearing/fuzz-corpus); the committed seeds
# (fuzz/seeds, written by examples/fuzz_seeds.rs) are read, never written.
# Reproduce a crash: RUSTC_BOOTSTRAP=1 cargo fuzz run -O TARGET fuzz/artifacts/TARGET/crash-…
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}"
shift
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clearing/target}/fuzz"
corpus_root="${FUZZ_CORPUS:-$HOME/.cache/clearing/fuzz-corpus}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

flags=(-O --debug-assertions)
echo "== building ${#targets[@]} fuzz targets"
cargo fuzz build "${flags[@]}" >/dev/null

log_dir="$(mktemp -d)"
status=0
for target in "${targets[@]}"; do
    corpus="$corpus_root/$target"
    mkdir -p "$corpus"
    seeds=()
    [ -d "fuzz/seeds/$target" ] && seeds=("fuzz/seeds/$target")
    log="$log_dir/$target.log"
    if cargo fuzz run "${flags[@]}" "$target" "$corpus" "${seeds[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        result="ok"
    else
        result="FAILED (see $log; input in fuzz/artifacts/$target/)"
        status=1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    printf '%-28s %6ss  runs %10s  coverage %6s  corpus %6s  %s\n' \
        "$target" "$seconds" "${runs:-?}" "${cov:-?}" "$(ls "$corpus" | wc -l)" "$result"
    if [ "$status" -ne 0 ]; then
        tail -40 "$log"
        break
    fi
done
exit "$status"
