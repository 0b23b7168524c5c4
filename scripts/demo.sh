#!/usr/bin/env bash
# The demo: build the guests to Wasm components, then regress ema-cross (baseline) against
# ema-cross-v2 (candidate) on the committed fixture store and print where the report is.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tapedeck-target}"
cargo build --release -p tapedeck-cli --quiet
TAPEDECK="$CARGO_TARGET_DIR/release/tapedeck"
"$TAPEDECK" build strategies/ema-cross strategies/ema-cross-v2 strategies/positions strategies/orders strategies/book --out target/guests
"$TAPEDECK" streams --store fixtures/store
# Projectors over every stream, diffed against the stored snapshots.
"$TAPEDECK" replay --store fixtures/store --projector target/guests/book.wasm \
  --projector target/guests/positions.wasm --projector target/guests/orders.wasm --jobs 2 --out target/demo/replay
# The regression. Decisions do diverge (v2 filters whipsaw trades), so --fail-on divergence
# exits 1 by design; the demo reports it and goes on.
set +e
"$TAPEDECK" regress --store fixtures/store --baseline target/guests/ema-cross.wasm \
  --candidate target/guests/ema-cross-v2.wasm --jobs 2 --fail-on divergence --out target/demo/regress
code=$?
set -e
[ "$code" -le 1 ] || exit "$code"
echo
echo "regression report: $(pwd)/target/demo/regress/report.html (and report.md, summary.json, *.parquet)"
