#!/usr/bin/env bash
# Scaling of sharded runs on this machine (BENCHMARKS.md, issue 16): a generated file store
# with its index, then `replay` (ema-cross + positions) and `backtest` (ema-cross) as one
# process and as 1, 2 and 4 shard processes at once (`--shard I/N --out`), each followed by
# `tapedeck merge`, whose output is compared with the single run's (byte for byte, but
# summary.json's timing). Also an empty shard (a process that gets no stream): what every
# shard pays whatever its share; and the single process with `--jobs 2` (both cores in one
# process, for comparison). Rounds are interleaved; the table gives each round's wall times
# in seconds.
#
#   scripts/bench-shards.sh [WORKDIR]
#
# TAPEDECK: the binary (default $CARGO_TARGET_DIR/release/tapedeck); INSTRUMENTS (32) and
# EVENTS (15000 per stream; two streams per instrument) size the store; ROUNDS (3). The store
# is kept in WORKDIR (default /tmp/tapedeck-bench-shards) and reused; remove it when done.
set -euo pipefail
cd "$(dirname "$0")/.."
T="${TAPEDECK:-${CARGO_TARGET_DIR:-$HOME/.cache/tapedeck-target}/release/tapedeck}"
W="${1:-/tmp/tapedeck-bench-shards}"
INSTRUMENTS="${INSTRUMENTS:-32}"
EVENTS="${EVENTS:-15000}"
ROUNDS="${ROUNDS:-3}"
store="$W/store-$INSTRUMENTS-$EVENTS"
mkdir -p "$W"
if [ ! -f "$store.done" ]; then
    rm -rf "$store"
    start=$(date +%s.%N)
    "$T" fixtures generate --out "$store" --instruments "$INSTRUMENTS" --events "$EVENTS" \
        --snapshot-every "$EVENTS" >/dev/null
    "$T" index rebuild --store "$store" >/dev/null
    echo "store: $((INSTRUMENTS * 2)) streams x $EVENTS events, generated and indexed in $(echo "$(date +%s.%N) - $start" | bc) s" >&2
    touch "$store.done"
fi
G="$W/guests"
if [ ! -f "$G/ema-cross.wasm" ] || [ ! -f "$G/positions.wasm" ]; then
    "$T" build strategies/ema-cross strategies/positions --out "$G" >/dev/null
fi
events=$((INSTRUMENTS * 2 * EVENTS))
args() {
    case $1 in
        replay) echo replay --store "$store" --strategy "$G/ema-cross.wasm" --projector "$G/positions.wasm" ;;
        backtest) echo backtest --store "$store" --strategy "$G/ema-cross.wasm" --period 10s ;;
    esac
}
now() { date +%s.%N; }
secs() { printf '%.2f' "$(echo "$2 - $1" | bc)"; }
same() {
    for f in config.json report.md junit.xml "$@"; do
        cmp -s "$W/whole/$f" "$W/merged/$f" || { echo "DIFFERENT: $f" >&2; exit 1; }
    done
}
printf '| round | command | 1 process | 1 process, --jobs 2 | 1 shard + merge | 2 shards + merge | 4 shards + merge | merge of 4 | empty shard |\n'
printf '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
for round in $(seq 1 "$ROUNDS"); do
    for kind in ${KINDS:-replay backtest}; do
        # shellcheck disable=SC2046
        a=($(args $kind))
        rm -rf "$W/whole"
        t0=$(now)
        "${T}" "${a[@]}" --out "$W/whole" >/dev/null 2>&1 || [ $? -eq 1 ]
        row="| $round | $kind | $(secs "$t0" "$(now)")"
        rm -rf "$W/jobs2"
        t0=$(now)
        "${T}" "${a[@]}" --jobs 2 --out "$W/jobs2" >/dev/null 2>&1 || [ $? -eq 1 ]
        row="$row | $(secs "$t0" "$(now)")"
        for n in 1 2 4; do
            rm -rf "$W"/shard-* "$W/merged"
            t0=$(now)
            pids=()
            for i in $(seq 0 $((n - 1))); do
                "${T}" "${a[@]}" --shard "$i/$n" --out "$W/shard-$i" >/dev/null 2>&1 &
                pids+=($!)
            done
            for p in "${pids[@]}"; do wait "$p"; done
            t1=$(now)
            "${T}" merge "$W"/shard-* --out "$W/merged" >/dev/null || [ $? -eq 1 ]
            t2=$(now)
            if [ $kind = replay ]; then same findings.json; else same report.html trades.parquet decisions.parquet equity_curve.parquet; fi
            row="$row | $(secs "$t0" "$t2")"
            merge=$(secs "$t1" "$t2")
        done
        # A shard that gets no stream: process start, store open, index check, module load.
        rm -rf "$W/empty"
        t0=$(now)
        "${T}" "${a[@]}" --shard 99999/100000 --out "$W/empty" >/dev/null 2>&1
        row="$row | $merge | $(secs "$t0" "$(now)") |"
        echo "$row"
    done
done
echo "($events events; $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
rm -rf "$W"/shard-* "$W/merged" "$W/whole" "$W/jobs2" "$W/empty"
