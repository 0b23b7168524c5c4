#!/usr/bin/env bash
# Fuzzes the parsers of untrusted bytes (the crate in fuzz/: cargo fuzz, libFuzzer) for a
# bounded time: every target (or the ones named) for SECONDS_PER_TARGET (default 60), starting
# from the committed corpus fuzz/corpus/<target>/. New inputs go to a scratch corpus that is
# removed afterwards, so the committed one changes only by hand. A crash leaves its input in
# fuzz/artifacts/<target>/ and makes the script exit 1 once every target has run.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   scripts/fuzz.sh --write-seeds [TARGET...]    # (re)writes the generated seeds into fuzz/corpus
#
# Installs cargo-fuzz if it is missing. libFuzzer needs nightly options: RUSTC_BOOTSTRAP=1 on
# the stable toolchain, as the guest build does. The build (AddressSanitizer, coverage, debug
# assertions) is separate from the main one, in TAPEDECK_FUZZ_TARGET_DIR
# (default ~/.cache/tapedeck-fuzz-target).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

write_seeds=0
secs=60
if [ "${1:-}" = "--write-seeds" ]; then
    write_seeds=1
    shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    secs="$1"
    shift
fi

export RUSTC_BOOTSTRAP=1
# The main build's target dir must not be shared: other flags, other artifacts.
unset CARGO_TARGET_DIR
target_dir="${TAPEDECK_FUZZ_TARGET_DIR:-$HOME/.cache/tapedeck-fuzz-target}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
export TAPEDECK_FUZZ_SCRATCH="$scratch"

start=$SECONDS
cargo fuzz build --target-dir "$target_dir"
echo "fuzz: build took $((SECONDS - start)) s"

if [ $write_seeds = 1 ]; then
    for t in "${targets[@]}"; do
        mkdir -p "$scratch/empty-$t"
        TAPEDECK_FUZZ_WRITE_SEEDS="$PWD/corpus" \
            cargo fuzz run --target-dir "$target_dir" "$t" "$scratch/empty-$t" -- -runs=0 \
            >"$scratch/$t.log" 2>&1 || { cat "$scratch/$t.log"; exit 1; }
        echo "fuzz: $t: $(find "corpus/$t" -type f | wc -l) seeds in fuzz/corpus/$t"
    done
    exit 0
fi

failed=()
for t in "${targets[@]}"; do
    mkdir -p "$scratch/corpus/$t" "corpus/$t"
    log="$scratch/$t.log"
    if cargo fuzz run --target-dir "$target_dir" "$t" "$scratch/corpus/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        echo "fuzz: $t: ${runs:-?}, ${cov:-cov: ?}, no crash"
    else
        failed+=("$t")
        tail -n 60 "$log"
        echo "fuzz: $t: CRASH (input in fuzz/artifacts/$t/)"
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]}"
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${secs} s each, no crash"
