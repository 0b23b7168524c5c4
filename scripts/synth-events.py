#!/usr/bin/env python3
"""Writes N quote envelopes over S streams as JSON lines (the file store's format), for
measuring `tapedeck events append` and `tapedeck index rebuild` at scale:

    scripts/synth-events.py N [STREAMS] > events.jsonl

Deterministic: event k is on stream k % STREAMS at 2024-01-02T00:00:00Z + k ms (one UTC day
holds 86.4M events), with prices from a fixed linear congruential walk."""
import sys

n = int(sys.argv[1])
streams = int(sys.argv[2]) if len(sys.argv) > 2 else 8
t0 = 1_704_153_600_000_000_000
out = sys.stdout
seqs = [0] * streams
x = 12345
buf = []
for k in range(n):
    s = k % streams
    seqs[s] += 1
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    bid = 10000 + x % 500
    t = t0 + k * 1_000_000
    buf.append(
        '{"event_id":"01HK%022d","stream_key":"md:synth:S%03d","seq":%d,"occurred_at":%d,'
        '"ingested_at":%d,"instrument":"S%03d","event_type":"quote","payload":{"bid_px":"%d.%02d",'
        '"bid_qty":"1.5","ask_px":"%d.%02d","ask_qty":"2.25"}}\n'
        % (k, s, seqs[s], t, t, s, bid // 100, bid % 100, (bid + 1) // 100, (bid + 1) % 100)
    )
    if len(buf) >= 100_000:
        out.write("".join(buf))
        buf.clear()
out.write("".join(buf))
