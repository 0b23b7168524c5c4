#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds the guests from source (through the
# tapedeck-test-guests build script), then checks formatting, clippy, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tapedeck-target}"
export INSTA_UPDATE=no
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
