#!/usr/bin/env bash
# Makes (once) a Python venv with PyPI's hftbacktest 2.4.x under ~/.cache, for the venue's
# comparison test (tests/all/venue_hft.rs), and prints its python. Idempotent: a venv whose
# hftbacktest imports is reused as it is. The install time is printed on stderr.
set -euo pipefail
VENV="${TAPEDECK_HFT_VENV:-$HOME/.cache/tapedeck-hftbacktest}"
PY="$VENV/bin/python"
if [ -x "$PY" ] && "$PY" -c 'import hftbacktest' 2>/dev/null; then
    echo "$PY"
    exit 0
fi
start=$(date +%s)
python3 -m venv "$VENV" >&2 || {
    apt-get install -y python3-venv >&2
    python3 -m venv "$VENV" >&2
}
"$PY" -m pip install --quiet --disable-pip-version-check 'hftbacktest>=2.4,<2.5' >&2
echo "hftbacktest venv ready in $(( $(date +%s) - start )) s at $VENV" >&2
echo "$PY"
