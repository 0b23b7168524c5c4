#!/usr/bin/env bash
# The demo: build the repo's guests to Wasm components and run the strategy benchmark
# (EMA-cross natively and in Wasm over the same seeded quotes).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tapedeck-target}"
cargo build --release -p tapedeck --quiet
TAPEDECK="$CARGO_TARGET_DIR/release/tapedeck"
"$TAPEDECK" build strategies/ema-cross strategies/ema-cross-v2 strategies/positions strategies/orders strategies/book --out target/guests
"$TAPEDECK" inspect target/guests/ema-cross.wasm
"$TAPEDECK" bench strategy --events 1000000 --wasm target/guests/ema-cross.wasm
echo "components are in target/guests/"
