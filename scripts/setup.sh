#!/usr/bin/env bash
# Installs what Tapedeck needs on a fresh Debian 12 machine, idempotently:
# a Rust toolchain that can build wasm32 guests (rustup's target if it can be added, else
# Debian's rustc-web + std source + lld), and Chromium for the HTML report test.
set -euo pipefail

if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "setup: rustup wasm32-unknown-unknown target present"
elif [ -f /usr/lib/rustlib/src/rust/library/std/Cargo.toml ] && command -v rust-lld >/dev/null && [ -x /usr/bin/cargo ]; then
  echo "setup: Debian rustc-web with std source present"
elif rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
  echo "setup: added rustup wasm32-unknown-unknown target"
else
  echo "setup: installing Debian's rustc-web, cargo-web, rust-web-src, lld-22 (std for wasm32 built from source)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq rustc-web cargo-web rust-web-src lld-22 >/dev/null
fi

if [ "${1:-}" = "--with-chromium" ] && ! command -v chromium >/dev/null; then
  echo "setup: installing Debian's chromium (the HTML report test opens report.html in it)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
