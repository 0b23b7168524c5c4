"""Native tests of a guest under CPython: pack quote batches as the host does, read the output
batch back. The guest code runs through the same driver as in the Wasm module."""

from struct import Struct

from .codec import LAYOUT_VERSION, OUTPUT_MAGIC, QUOTE, CodecError

_BATCH = Struct("<4sHHII")
_QUOTE = Struct("<IBBBxIIQqqqqq")
_OUT_HEAD = Struct("<IB3xQ")


def quote_batch(instrument, mids, first_seq=1, px_scale=2, qty_scale=3):
    """One stream's quotes on `instrument`, one per mid (one tick wide), seqs from
    `first_seq`."""
    p = 10 ** px_scale
    recs = []
    for i, mid in enumerate(mids):
        m = round(mid * p)
        seq = first_seq + i
        recs.append(_QUOTE.pack(64, QUOTE, px_scale, qty_scale, 1, instrument, seq,
                                seq * 1_000_000, m - 1, 10 ** qty_scale, m + 1, 10 ** qty_scale))
    return _BATCH.pack(b"TDEV", LAYOUT_VERSION, 0, len(recs), 0) + b"".join(recs)


def outputs(batch):
    """The records of an output batch as (kind, cause_seq, body bytes); kind 1 order, 2 cancel,
    3 log, 4 metric. Orders' side is `body[12]`; a log's text is `body[5:]`."""
    magic, _layout, _flags, count, _ = _BATCH.unpack_from(batch, 0)
    if magic != OUTPUT_MAGIC:
        raise CodecError("not an output batch")
    pos, out = 16, []
    for _ in range(count):
        n, kind, seq = _OUT_HEAD.unpack_from(batch, pos)
        out.append((kind, seq, bytes(batch[pos + 16:pos + n])))
        pos += n
    return out
