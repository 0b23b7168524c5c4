#!/usr/bin/env bash
# Installs what Tapedeck needs on a fresh Debian 12 machine, idempotently:
# a Rust toolchain that can build wasm32 guests (rustup's target if it can be added, else
# Debian's rustc-web + std source + lld); with --with-chromium, Chromium for the HTML report
# test; with --guest-langs, the Python and JavaScript guest toolchains, pinned, outside the
# repository: componentize-py in a venv at ~/.cache/tapedeck-py (PyPI; it bundles CPython)
# and componentize-js under the npm prefix ~/.cache/tapedeck-js (npm; it bundles
# SpiderMonkey). Keep the versions in step with guest-build/src/script.rs.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1
COMPONENTIZE_JS_VERSION=0.23.0
with_chromium=false
guest_langs=false
for arg in "$@"; do
  case "$arg" in
    --with-chromium) with_chromium=true ;;
    --guest-langs) guest_langs=true ;;
    *) echo "setup: unknown option $arg (known: --with-chromium, --guest-langs)" >&2; exit 2 ;;
  esac
done

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

if $with_chromium && ! command -v chromium >/dev/null; then
  echo "setup: installing Debian's chromium (the HTML report test opens report.html in it)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

if $guest_langs; then
  py_venv="$HOME/.cache/tapedeck-py"
  if [ "$("$py_venv/bin/componentize-py" --version 2>/dev/null | awk '{print $2}')" = "$COMPONENTIZE_PY_VERSION" ]; then
    echo "setup: componentize-py $COMPONENTIZE_PY_VERSION present ($py_venv)"
  else
    # Python >= 3.11 for the venv (tomllib reads pyproject.toml); Debian 12's python3 is 3.11.
    python=""
    for p in python3.13 python3.12 python3.11 python3; do
      if command -v "$p" >/dev/null && "$p" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python="$p"; break
      fi
    done
    if [ -z "$python" ]; then
      echo "setup: installing Debian's python3 and python3-venv"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq python3 python3-venv >/dev/null
      python=python3
    fi
    echo "setup: installing componentize-py $COMPONENTIZE_PY_VERSION into $py_venv"
    rm -rf "$py_venv"
    "$python" -m venv "$py_venv"
    "$py_venv/bin/pip" install -q --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
  fi
  js_prefix="$HOME/.cache/tapedeck-js"
  js_pkg="$js_prefix/node_modules/@bytecodealliance/componentize-js/package.json"
  if [ -f "$js_pkg" ] && grep -q "\"version\": \"$COMPONENTIZE_JS_VERSION\"" "$js_pkg"; then
    echo "setup: componentize-js $COMPONENTIZE_JS_VERSION present ($js_prefix)"
  else
    if ! command -v npm >/dev/null; then
      echo "setup: installing Debian's nodejs and npm"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq nodejs npm >/dev/null
    fi
    echo "setup: installing componentize-js $COMPONENTIZE_JS_VERSION under $js_prefix"
    mkdir -p "$js_prefix"
    npm install --silent --no-audit --no-fund --prefix "$js_prefix" "@bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION"
  fi
fi
