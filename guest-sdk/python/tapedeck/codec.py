"""The batch codec, in Python: the packed little-endian layouts of `guest-sdk/src/codec`
(layout v1), read and written exactly as the Rust codec does. The host checks every output
batch with the Rust codec, so a mistake here is an error, not a silent drift.

Event batch:  header 16 bytes  "TDEV" | layout u16 | flags u16 | count u32 | reserved u32
              event  32 bytes  len u32 | kind u8 | px_scale u8 | qty_scale u8 | 0 | stream u32
                               | instrument u32 | seq u64 | time_ns i64, then the payload
Output batch: header 16 bytes  "TDOU" | layout u16 | flags u16 | count u32 | reserved u32
              record 16 bytes  len u32 | kind u8 | 0 0 0 | cause_seq u64, then the body
"""

from struct import Struct

LAYOUT_VERSION = 1
EVENT_MAGIC = b"TDEV"
OUTPUT_MAGIC = b"TDOU"

# Event kinds (the byte in every event record).
QUOTE = 1
TRADE = 2
BOOK_SNAPSHOT = 3
BOOK_DELTA = 4
ORDER_SUBMITTED = 5
ORDER_ACKED = 6
ORDER_REJECTED = 7
ORDER_CANCELLED = 8
FILL = 9
POSITION = 10
BALANCE = 11
RISK_DECISION = 12
GUARDRAIL_TRANSITION = 13
FUNDING = 14
CUSTOM = 15

# Sides, order types, times in force, log levels: the wire bytes.
BUY = 1
SELL = 2
LIMIT = 1
MARKET = 2
GTC = 1
IOC = 2
FOK = 3
POST_ONLY = 4
TRACE = 0
DEBUG = 1
INFO = 2
WARN = 3
ERROR = 4

_POW10 = (1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
          1e15, 1e16, 1e17, 1e18)


def pow10(scale):
    """10^scale as a float, as the Rust codec computes it."""
    return _POW10[scale] if scale < 19 else 10.0 ** scale


_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1


def to_mantissa(value, scale):
    """`value * 10^scale` rounded half away from zero, saturating to i64 (Rust's `f64::round`
    then `as i64`)."""
    x = value * pow10(scale)
    if x != x:
        return 0
    if x >= 9.223372036854775807e18:
        return _I64_MAX
    if x <= -9.223372036854775808e18:
        return _I64_MIN
    t = int(x)
    if abs(x - t) >= 0.5:
        t += 1 if x > 0 else -1
    return t


_BATCH = Struct("<4sHHII")
_QUOTE = Struct("<IBBBxIIQqqqqq")  # a whole quote record: 64 bytes
_HEAD = Struct("<IBBBxIIQq")
_U8 = Struct("<B")
_U32 = Struct("<I")
_U64 = Struct("<Q")
_I64 = Struct("<q")
_DEC = Struct("<qB")
_LEVEL = Struct("<qq")


class Event:
    """One event as a guest sees it: the fixed header, `kind`, and `payload` (one of the
    payload classes below). Prices and quantities are integer mantissas at `px_scale` /
    `qty_scale`; `px()` and `qty()` give float views."""

    __slots__ = ("kind", "px_scale", "qty_scale", "stream", "instrument", "seq", "time_ns",
                 "payload")

    def px(self, mantissa):
        """A price mantissa of this event as a float."""
        return mantissa / _POW10[self.px_scale]

    def qty(self, mantissa):
        """A quantity mantissa of this event as a float."""
        return mantissa / _POW10[self.qty_scale]

    def __repr__(self):
        return (f"Event(kind={self.kind}, seq={self.seq}, instrument={self.instrument}, "
                f"payload={self.payload!r})")


def _payload(name, fields):
    """A small record class with slots, positional construction and a repr."""
    def __init__(self, *values):
        for f, v in zip(fields, values):
            setattr(self, f, v)

    def __repr__(self):
        return name + "(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in fields) + ")"

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, f) == getattr(other, f) for f in fields)

    return type(name, (), {"__slots__": fields, "__init__": __init__, "__repr__": __repr__,
                           "__eq__": __eq__, "fields": fields})


class Quote:
    """Top of book (mantissas). Written out, not made by `_payload`: it is the hot path."""

    __slots__ = ("bid_px", "bid_qty", "ask_px", "ask_qty")
    fields = __slots__

    def __init__(self, bid_px, bid_qty, ask_px, ask_qty):
        self.bid_px = bid_px
        self.bid_qty = bid_qty
        self.ask_px = ask_px
        self.ask_qty = ask_qty

    def __repr__(self):
        return (f"Quote(bid_px={self.bid_px}, bid_qty={self.bid_qty}, ask_px={self.ask_px}, "
                f"ask_qty={self.ask_qty})")

    def __eq__(self, other):
        return type(other) is Quote and (self.bid_px, self.bid_qty, self.ask_px,
                                          self.ask_qty) == (other.bid_px, other.bid_qty,
                                                            other.ask_px, other.ask_qty)


Trade = _payload("Trade", ("price", "qty", "trade_id", "aggressor"))
BookSnapshot = _payload("BookSnapshot", ("update_id", "bids", "asks"))
BookDelta = _payload("BookDelta", ("first_update_id", "final_update_id",
                                   "prev_final_update_id", "bids", "asks"))
OrderSubmitted = _payload("OrderSubmitted", ("client_order_id", "side", "order_type", "tif",
                                             "price", "qty"))
OrderAcked = _payload("OrderAcked", ("client_order_id", "venue_order_id"))
OrderRejected = _payload("OrderRejected", ("client_order_id", "reason"))
OrderCancelled = _payload("OrderCancelled", ("client_order_id",))
Fill = _payload("Fill", ("client_order_id", "trade_id", "side", "liquidity", "is_final",
                         "price", "qty", "fee"))
Position = _payload("Position", ("qty", "avg_price", "realized_pnl"))
Balance = _payload("Balance", ("total", "free", "locked"))
RiskDecision = _payload("RiskDecision", ("client_order_id", "verdict", "reason_code"))
GuardrailTransition = _payload("GuardrailTransition", ("prev_mode", "next_mode",
                                                       "trigger_metric", "value", "reason"))
Funding = _payload("Funding", ("rate", "mark_price", "payment"))
Custom = _payload("Custom", ("type_name", "json"))


class CodecError(Exception):
    """A batch that does not decode: a host bug, not guest input (the glue traps)."""


class _Reader:
    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf, pos, end):
        self.buf, self.pos, self.end = buf, pos, end

    def _take(self, st):
        p = self.pos
        if p + st.size > self.end:
            raise CodecError(f"record truncated at offset {p}")
        self.pos = p + st.size
        return st.unpack_from(self.buf, p)

    def u8(self):
        return self._take(_U8)[0]

    def u32(self):
        return self._take(_U32)[0]

    def u64(self):
        return self._take(_U64)[0]

    def i64(self):
        return self._take(_I64)[0]

    def dec(self):
        """A decimal that is not a price or a quantity: (mantissa, scale)."""
        return self._take(_DEC)

    def bytes(self):
        n = self.u32()
        p = self.pos
        if p + n > self.end:
            raise CodecError(f"byte string truncated at offset {p}")
        self.pos = p + n
        return bytes(self.buf[p:p + n])

    def str(self):
        return self.bytes().decode("utf-8")

    def levels(self):
        """A book side: a list of (price, qty) mantissa pairs."""
        n = self.u32()
        out = []
        for _ in range(n):
            out.append(self._take(_LEVEL))
        return out

    def boolean(self):
        v = self.u8()
        if v > 1:
            raise CodecError(f"invalid is_final value {v}")
        return v == 1


def _decode_payload(kind, r):
    if kind == QUOTE:
        return Quote(r.i64(), r.i64(), r.i64(), r.i64())
    if kind == TRADE:
        return Trade(r.i64(), r.i64(), r.u64(), r.u8())
    if kind == BOOK_SNAPSHOT:
        return BookSnapshot(r.u64(), r.levels(), r.levels())
    if kind == BOOK_DELTA:
        return BookDelta(r.u64(), r.u64(), r.u64(), r.levels(), r.levels())
    if kind == ORDER_SUBMITTED:
        return OrderSubmitted(r.u64(), r.u8(), r.u8(), r.u8(), r.i64(), r.i64())
    if kind == ORDER_ACKED:
        return OrderAcked(r.u64(), r.u64())
    if kind == ORDER_REJECTED:
        return OrderRejected(r.u64(), r.str())
    if kind == ORDER_CANCELLED:
        return OrderCancelled(r.u64())
    if kind == FILL:
        return Fill(r.u64(), r.u64(), r.u8(), r.u8(), r.boolean(), r.i64(), r.i64(), r.dec())
    if kind == POSITION:
        return Position(r.i64(), r.i64(), r.dec())
    if kind == BALANCE:
        return Balance(r.dec(), r.dec(), r.dec())
    if kind == RISK_DECISION:
        return RiskDecision(r.u64(), r.u8(), r.str())
    if kind == GUARDRAIL_TRANSITION:
        return GuardrailTransition(r.str(), r.str(), r.str(), r.dec(), r.str())
    if kind == FUNDING:
        return Funding(r.dec(), r.i64(), r.dec())
    if kind == CUSTOM:
        return Custom(r.str(), r.bytes())
    raise CodecError(f"unknown event kind {kind}")


def events(batch):
    """The events of a packed batch, in order (a generator). Quotes (the hot path) come in one
    `Event` and one `Quote`, refilled for each quote, as the Rust SDK lends `&Event`: keep the
    fields you need past the call, not the objects."""
    magic, layout, _flags, count, _ = _BATCH.unpack_from(batch, 0)
    if magic != EVENT_MAGIC:
        raise CodecError(f"bad batch magic {magic!r}")
    if layout != LAYOUT_VERSION:
        raise CodecError(f"batch layout v{layout} is not v{LAYOUT_VERSION}")
    pos, end = 16, len(batch)
    quote, head = _QUOTE.unpack_from, _HEAD.unpack_from
    qev, q = Event(), Quote(0, 0, 0, 0)
    qev.kind, qev.payload = QUOTE, q
    for _ in range(count):
        if end - pos < 32:
            raise CodecError(f"batch truncated at offset {pos}")
        if end - pos >= 64:
            (n, kind, qev.px_scale, qev.qty_scale, qev.stream, qev.instrument, qev.seq,
             qev.time_ns, q.bid_px, q.bid_qty, q.ask_px, q.ask_qty) = quote(batch, pos)
            if n == 64 and kind == QUOTE:
                pos += 64
                yield qev
                continue
        ev = Event()
        (n, kind, ev.px_scale, ev.qty_scale, ev.stream, ev.instrument, ev.seq,
         ev.time_ns) = head(batch, pos)
        if n < 32 or pos + n > end:
            raise CodecError(f"record at offset {pos} has inconsistent length {n}")
        r = _Reader(batch, pos + 32, pos + n)
        ev.kind = kind
        ev.payload = _decode_payload(kind, r)
        if r.pos != pos + n:
            raise CodecError(f"record at offset {pos} has inconsistent length {n}")
        pos += n
        yield ev
    if pos != end:
        raise CodecError(f"batch header says {count} records, the buffer holds more")


_OUT_NEW_ORDER = Struct("<IB3xQIQBBBBBqq")
_OUT_CANCEL = Struct("<IB3xQIQ")
_OUT_LOG = Struct("<IB3xQBI")
_OUT_METRIC_HEAD = Struct("<IB3xQI")
_F64 = Struct("<d")
_U64_MASK = (1 << 64) - 1


class OutputWriter:
    """Builds an output batch: order intents, cancels, logs and metrics, each with the seq of
    the event that caused it."""

    __slots__ = ("parts", "count")

    def __init__(self):
        self.parts = []
        self.count = 0

    def new_order(self, cause_seq, instrument, client_order_id, side, order_type, tif,
                  px_scale, qty_scale, price, qty):
        self.parts.append(_OUT_NEW_ORDER.pack(
            49, 1, cause_seq, instrument, client_order_id & _U64_MASK, side, order_type, tif,
            px_scale, qty_scale, price, qty))
        self.count += 1

    def cancel(self, cause_seq, instrument, client_order_id):
        self.parts.append(_OUT_CANCEL.pack(28, 2, cause_seq, instrument,
                                           client_order_id & _U64_MASK))
        self.count += 1

    def log(self, cause_seq, level, message):
        b = message.encode("utf-8")
        self.parts.append(_OUT_LOG.pack(21 + len(b), 3, cause_seq, level, len(b)) + b)
        self.count += 1

    def metric(self, cause_seq, name, value):
        b = name.encode("utf-8")
        self.parts.append(_OUT_METRIC_HEAD.pack(28 + len(b), 4, cause_seq, len(b)) + b
                          + _F64.pack(float(value)))
        self.count += 1

    def finish(self):
        """The packed batch; the writer starts over empty."""
        head = _BATCH.pack(OUTPUT_MAGIC, LAYOUT_VERSION, 0, self.count, 0)
        out = head + b"".join(self.parts)
        self.parts = []
        self.count = 0
        return out
