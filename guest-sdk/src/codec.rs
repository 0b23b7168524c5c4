//! The batch codec: the packed, versioned, little-endian byte layouts that cross the Wasm
//! boundary on the hot path. This one module is compiled into the host and into every guest,
//! so the two sides cannot drift.
//!
//! # Event batch, layout v1
//! ```text
//! header   16 bytes   magic "TDEV" | layout u16 | flags u16 (0) | count u32 | reserved u32 (0)
//! event    32 bytes   len u32 (whole record) | kind u8 | px_scale u8 | qty_scale u8 | 0u8
//!                     | stream u32 | instrument u32 | seq u64 | time_ns i64
//! payload  len - 32   per kind, see `Payload`; strings and byte strings are u32 length + bytes,
//!                     book sides are u32 count + count * (price i64, qty i64),
//!                     decimals that are not a price or a quantity are i64 mantissa + u8 scale
//! ```
//! # Output batch, layout v1
//! ```text
//! header   16 bytes   magic "TDOU" | layout u16 | flags u16 (0) | count u32 | reserved u32 (0)
//! record   16 bytes   len u32 | kind u8 | 0u8 x3 | cause_seq u64
//! body     len - 16   per kind, see `Output`
//! ```
//! Prices and quantities are fixed-point: an integer mantissa and a per-event scale
//! (`value = mantissa / 10^scale`), so books and positions rebuild exactly.

use std::fmt;

/// Version of the byte layouts; part of the ABI version a module exports.
pub const LAYOUT_VERSION: u16 = 1;
pub const EVENT_MAGIC: [u8; 4] = *b"TDEV";
pub const OUTPUT_MAGIC: [u8; 4] = *b"TDOU";
pub const BATCH_HEADER_LEN: usize = 16;
pub const EVENT_HEADER_LEN: usize = 32;
pub const OUTPUT_HEADER_LEN: usize = 16;

/// Why a byte string is not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The buffer ended before a header, record or field did.
    Truncated {
        at: usize,
        needed: usize,
        len: usize,
    },
    BadMagic {
        found: [u8; 4],
        expected: [u8; 4],
    },
    /// A batch written by a different layout version.
    LayoutVersion {
        found: u16,
        expected: u16,
    },
    UnknownKind {
        at: usize,
        kind: u8,
    },
    /// A record's length field disagrees with its contents.
    BadLength {
        at: usize,
        len: u32,
    },
    BadEnum {
        at: usize,
        field: &'static str,
        value: u8,
    },
    BadUtf8 {
        at: usize,
    },
    /// The header promised more or fewer records than the buffer holds.
    CountMismatch {
        header: u32,
        found: u32,
    },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { at, needed, len } => {
                write!(
                    f,
                    "batch truncated: {needed} bytes needed at offset {at}, buffer has {len}"
                )
            }
            Self::BadMagic { found, expected } => {
                write!(f, "bad batch magic {found:?}, expected {expected:?}")
            }
            Self::LayoutVersion { found, expected } => write!(
                f,
                "batch layout v{found} is not the v{expected} this side speaks; rebuild against the same tapedeck-guest"
            ),
            Self::UnknownKind { at, kind } => {
                write!(f, "unknown record kind {kind} at offset {at}")
            }
            Self::BadLength { at, len } => {
                write!(f, "record at offset {at} has inconsistent length {len}")
            }
            Self::BadEnum { at, field, value } => {
                write!(f, "invalid {field} value {value} in record at offset {at}")
            }
            Self::BadUtf8 { at } => write!(f, "invalid UTF-8 in record at offset {at}"),
            Self::CountMismatch { header, found } => {
                write!(f, "batch header says {header} records, found {found}")
            }
        }
    }
}

impl std::error::Error for CodecError {}

/// A fixed-point decimal: `mantissa / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Decimal {
    pub mantissa: i64,
    pub scale: u8,
}

impl Decimal {
    pub const fn new(mantissa: i64, scale: u8) -> Self {
        Self { mantissa, scale }
    }

    pub fn to_f64(self) -> f64 {
        self.mantissa as f64 / pow10(self.scale)
    }
}

/// 10^scale as f64, for the f64 views guests use for their math.
#[inline]
pub fn pow10(scale: u8) -> f64 {
    const P: [f64; 19] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18,
    ];
    match P.get(scale as usize) {
        Some(p) => *p,
        None => 10f64.powi(scale as i32),
    }
}

/// A one-byte enum on the wire.
trait WireEnum: Sized {
    const FIELD: &'static str;
    fn from_wire(v: u8) -> Option<Self>;
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident, $field:literal { $($(#[$vm:meta])* $variant:ident = $value:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $variant = $value),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn from_u8(v: u8) -> Option<Self> {
                match v { $($value => Some(Self::$variant),)+ _ => None }
            }

        }

        impl WireEnum for $name {
            const FIELD: &'static str = $field;
            fn from_wire(v: u8) -> Option<Self> {
                Self::from_u8(v)
            }
        }
    };
}

wire_enum!(
    /// The type of a recorded event; the byte in every event record.
    EventKind, "event kind" {
        Quote = 1,
        Trade = 2,
        BookSnapshot = 3,
        BookDelta = 4,
        OrderSubmitted = 5,
        OrderAcked = 6,
        OrderRejected = 7,
        OrderCancelled = 8,
        Fill = 9,
        Position = 10,
        Balance = 11,
        RiskDecision = 12,
        GuardrailTransition = 13,
        Funding = 14,
        /// Anything else: a type name and JSON bytes, so no recorded event is unrepresentable.
        Custom = 15,
    }
);

wire_enum!(Side, "side" { Buy = 1, Sell = 2 });
wire_enum!(
    /// Aggressor side of a trade, when the venue says.
    Aggressor, "aggressor" { Unknown = 0, Buy = 1, Sell = 2 }
);
wire_enum!(OrderType, "order type" { Limit = 1, Market = 2 });
wire_enum!(TimeInForce, "time in force" { Gtc = 1, Ioc = 2, Fok = 3, PostOnly = 4 });
wire_enum!(Liquidity, "liquidity" { Unknown = 0, Maker = 1, Taker = 2 });
wire_enum!(RiskVerdict, "risk decision" { Allow = 1, Deny = 2, Reduce = 3 });
wire_enum!(LogLevel, "log level" { Trace = 0, Debug = 1, Info = 2, Warn = 3, Error = 4 });

impl Side {
    /// +1 for buy, -1 for sell.
    pub fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }
}

/// One price level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Level {
    pub price: i64,
    pub qty: i64,
}

/// One side of a book in a record: borrowed from a batch, or from the encoder's caller.
#[derive(Clone, Copy)]
pub enum Levels<'a> {
    Wire(&'a [u8]),
    Slice(&'a [Level]),
}

impl<'a> Levels<'a> {
    pub fn len(&self) -> usize {
        match self {
            Levels::Wire(b) => b.len() / 16,
            Levels::Slice(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = Level> + 'a {
        let (wire, slice): (&'a [u8], &'a [Level]) = match *self {
            Levels::Wire(b) => (b, &[]),
            Levels::Slice(s) => (&[], s),
        };
        let n = wire.len() / 16 + slice.len();
        (0..n).map(move |i| {
            if wire.is_empty() {
                slice[i]
            } else {
                let c = &wire[i * 16..i * 16 + 16];
                Level {
                    price: le_i64(&c[..8]),
                    qty: le_i64(&c[8..]),
                }
            }
        })
    }

    pub fn to_vec(&self) -> Vec<Level> {
        self.iter().collect()
    }
}

impl PartialEq for Levels<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for Levels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|l| (l.price, l.qty)))
            .finish()
    }
}

/// The fixed part every event carries. The host keeps the full envelope (ids, tenancy,
/// correlation); guests see this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EventHeader {
    /// Per-run id of the stream key (the host maps ids to keys).
    pub stream: u32,
    /// Per-run id of the instrument (or asset, for balances); 0 where none applies.
    pub instrument: u32,
    /// Gapless per-stream sequence number, from 1.
    pub seq: u64,
    /// Event time in nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// Scale of every price mantissa in the payload.
    pub px_scale: u8,
    /// Scale of every quantity mantissa in the payload.
    pub qty_scale: u8,
}

/// Top of book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quote {
    pub bid_px: i64,
    pub bid_qty: i64,
    pub ask_px: i64,
    pub ask_qty: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trade {
    pub price: i64,
    pub qty: i64,
    pub trade_id: u64,
    pub aggressor: Aggressor,
}

/// A full book image (for example a REST depth snapshot), best level first on each side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BookSnapshot<'a> {
    pub update_id: u64,
    pub bids: Levels<'a>,
    pub asks: Levels<'a>,
}

/// Changed price levels; a quantity of zero removes the level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BookDelta<'a> {
    pub first_update_id: u64,
    pub final_update_id: u64,
    /// The venue's previous final update id where it sends one (futures `pu`), else 0.
    pub prev_final_update_id: u64,
    pub bids: Levels<'a>,
    pub asks: Levels<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderSubmitted {
    pub client_order_id: u64,
    pub side: Side,
    pub order_type: OrderType,
    pub tif: TimeInForce,
    /// Limit price mantissa (0 for market orders).
    pub price: i64,
    pub qty: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderAcked {
    pub client_order_id: u64,
    pub venue_order_id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderRejected<'a> {
    pub client_order_id: u64,
    pub reason: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderCancelled {
    pub client_order_id: u64,
}

/// An execution, partial or full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    pub client_order_id: u64,
    pub trade_id: u64,
    pub side: Side,
    pub liquidity: Liquidity,
    /// True when this fill completes the order.
    pub is_final: bool,
    pub price: i64,
    pub qty: i64,
    /// Fee in the quote asset; negative for a rebate.
    pub fee: Decimal,
}

/// A venue-reported position (signed quantity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub qty: i64,
    pub avg_price: i64,
    pub realized_pnl: Decimal,
}

/// Balance / account state for the asset in `EventHeader::instrument`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    pub total: Decimal,
    pub free: Decimal,
    pub locked: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiskDecision<'a> {
    pub client_order_id: u64,
    pub verdict: RiskVerdict,
    pub reason_code: &'a str,
}

/// A guardrail (circuit breaker) changing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardrailTransition<'a> {
    pub prev_mode: &'a str,
    pub next_mode: &'a str,
    pub trigger_metric: &'a str,
    pub value: Decimal,
    pub reason: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Funding {
    pub rate: Decimal,
    pub mark_price: i64,
    pub payment: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Custom<'a> {
    pub type_name: &'a str,
    pub json: &'a [u8],
}

/// The typed payload of an event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Payload<'a> {
    Quote(Quote),
    Trade(Trade),
    BookSnapshot(BookSnapshot<'a>),
    BookDelta(BookDelta<'a>),
    OrderSubmitted(OrderSubmitted),
    OrderAcked(OrderAcked),
    OrderRejected(OrderRejected<'a>),
    OrderCancelled(OrderCancelled),
    Fill(Fill),
    Position(Position),
    Balance(Balance),
    RiskDecision(RiskDecision<'a>),
    GuardrailTransition(GuardrailTransition<'a>),
    Funding(Funding),
    Custom(Custom<'a>),
}

impl Payload<'_> {
    pub fn kind(&self) -> EventKind {
        match self {
            Payload::Quote(_) => EventKind::Quote,
            Payload::Trade(_) => EventKind::Trade,
            Payload::BookSnapshot(_) => EventKind::BookSnapshot,
            Payload::BookDelta(_) => EventKind::BookDelta,
            Payload::OrderSubmitted(_) => EventKind::OrderSubmitted,
            Payload::OrderAcked(_) => EventKind::OrderAcked,
            Payload::OrderRejected(_) => EventKind::OrderRejected,
            Payload::OrderCancelled(_) => EventKind::OrderCancelled,
            Payload::Fill(_) => EventKind::Fill,
            Payload::Position(_) => EventKind::Position,
            Payload::Balance(_) => EventKind::Balance,
            Payload::RiskDecision(_) => EventKind::RiskDecision,
            Payload::GuardrailTransition(_) => EventKind::GuardrailTransition,
            Payload::Funding(_) => EventKind::Funding,
            Payload::Custom(_) => EventKind::Custom,
        }
    }
}

/// One event as a guest sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event<'a> {
    pub header: EventHeader,
    pub payload: Payload<'a>,
}

impl Event<'_> {
    pub fn seq(&self) -> u64 {
        self.header.seq
    }

    pub fn kind(&self) -> EventKind {
        self.payload.kind()
    }

    /// A price mantissa of this event as f64.
    #[inline]
    pub fn px(&self, mantissa: i64) -> f64 {
        mantissa as f64 / pow10(self.header.px_scale)
    }

    /// A quantity mantissa of this event as f64.
    #[inline]
    pub fn qty(&self, mantissa: i64) -> f64 {
        mantissa as f64 / pow10(self.header.qty_scale)
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Appends records to an owned byte buffer and keeps the header's count current.
struct Writer {
    buf: Vec<u8>,
    count: u32,
}

impl Writer {
    fn begin(mut buf: Vec<u8>, magic: [u8; 4]) -> Self {
        buf.clear();
        buf.extend_from_slice(&magic);
        buf.extend_from_slice(&LAYOUT_VERSION.to_le_bytes());
        buf.extend_from_slice(&0u16.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        Self { buf, count: 0 }
    }

    fn finish_record(&mut self, record_start: usize) {
        let len = (self.buf.len() - record_start) as u32;
        self.buf[record_start..record_start + 4].copy_from_slice(&len.to_le_bytes());
        self.count += 1;
        self.buf[8..12].copy_from_slice(&self.count.to_le_bytes());
    }
}

fn put_u8(b: &mut Vec<u8>, v: u8) {
    b.push(v);
}
fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put_i64(b: &mut Vec<u8>, v: i64) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put_f64(b: &mut Vec<u8>, v: f64) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put_dec(b: &mut Vec<u8>, d: Decimal) {
    put_i64(b, d.mantissa);
    put_u8(b, d.scale);
}
fn put_bytes(b: &mut Vec<u8>, s: &[u8]) {
    put_u32(b, s.len() as u32);
    b.extend_from_slice(s);
}
fn put_levels(b: &mut Vec<u8>, l: &Levels<'_>) {
    put_u32(b, l.len() as u32);
    match l {
        Levels::Wire(w) => b.extend_from_slice(w),
        Levels::Slice(s) => {
            for lv in s.iter() {
                put_i64(b, lv.price);
                put_i64(b, lv.qty);
            }
        }
    }
}

/// Builds an event batch in a caller-owned buffer (reuse it across batches).
pub struct EventBatchWriter {
    w: Writer,
}

impl EventBatchWriter {
    /// Starts a batch in `buf`, clearing it (pass back a finished batch's buffer to reuse it).
    pub fn new(buf: Vec<u8>) -> Self {
        Self {
            w: Writer::begin(buf, EVENT_MAGIC),
        }
    }

    /// The batch so far: always a complete, valid batch.
    pub fn as_bytes(&self) -> &[u8] {
        &self.w.buf
    }

    pub fn finish(self) -> Vec<u8> {
        self.w.buf
    }

    pub fn count(&self) -> u32 {
        self.w.count
    }

    pub fn push(&mut self, header: &EventHeader, payload: &Payload<'_>) {
        let start = self.w.buf.len();
        let b = &mut self.w.buf;
        put_u32(b, 0);
        put_u8(b, payload.kind() as u8);
        put_u8(b, header.px_scale);
        put_u8(b, header.qty_scale);
        put_u8(b, 0);
        put_u32(b, header.stream);
        put_u32(b, header.instrument);
        put_u64(b, header.seq);
        put_i64(b, header.time_ns);
        match payload {
            Payload::Quote(q) => {
                put_i64(b, q.bid_px);
                put_i64(b, q.bid_qty);
                put_i64(b, q.ask_px);
                put_i64(b, q.ask_qty);
            }
            Payload::Trade(t) => {
                put_i64(b, t.price);
                put_i64(b, t.qty);
                put_u64(b, t.trade_id);
                put_u8(b, t.aggressor as u8);
            }
            Payload::BookSnapshot(s) => {
                put_u64(b, s.update_id);
                put_levels(b, &s.bids);
                put_levels(b, &s.asks);
            }
            Payload::BookDelta(d) => {
                put_u64(b, d.first_update_id);
                put_u64(b, d.final_update_id);
                put_u64(b, d.prev_final_update_id);
                put_levels(b, &d.bids);
                put_levels(b, &d.asks);
            }
            Payload::OrderSubmitted(o) => {
                put_u64(b, o.client_order_id);
                put_u8(b, o.side as u8);
                put_u8(b, o.order_type as u8);
                put_u8(b, o.tif as u8);
                put_i64(b, o.price);
                put_i64(b, o.qty);
            }
            Payload::OrderAcked(o) => {
                put_u64(b, o.client_order_id);
                put_u64(b, o.venue_order_id);
            }
            Payload::OrderRejected(o) => {
                put_u64(b, o.client_order_id);
                put_bytes(b, o.reason.as_bytes());
            }
            Payload::OrderCancelled(o) => put_u64(b, o.client_order_id),
            Payload::Fill(f) => {
                put_u64(b, f.client_order_id);
                put_u64(b, f.trade_id);
                put_u8(b, f.side as u8);
                put_u8(b, f.liquidity as u8);
                put_u8(b, f.is_final as u8);
                put_i64(b, f.price);
                put_i64(b, f.qty);
                put_dec(b, f.fee);
            }
            Payload::Position(p) => {
                put_i64(b, p.qty);
                put_i64(b, p.avg_price);
                put_dec(b, p.realized_pnl);
            }
            Payload::Balance(x) => {
                put_dec(b, x.total);
                put_dec(b, x.free);
                put_dec(b, x.locked);
            }
            Payload::RiskDecision(r) => {
                put_u64(b, r.client_order_id);
                put_u8(b, r.verdict as u8);
                put_bytes(b, r.reason_code.as_bytes());
            }
            Payload::GuardrailTransition(g) => {
                put_bytes(b, g.prev_mode.as_bytes());
                put_bytes(b, g.next_mode.as_bytes());
                put_bytes(b, g.trigger_metric.as_bytes());
                put_dec(b, g.value);
                put_bytes(b, g.reason.as_bytes());
            }
            Payload::Funding(f) => {
                put_dec(b, f.rate);
                put_i64(b, f.mark_price);
                put_dec(b, f.payment);
            }
            Payload::Custom(c) => {
                put_bytes(b, c.type_name.as_bytes());
                put_bytes(b, c.json);
            }
        }
        self.w.finish_record(start);
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

#[inline]
fn le_i64(b: &[u8]) -> i64 {
    i64::from_le_bytes(b[..8].try_into().unwrap())
}

/// A bounds-checked cursor over one record.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of the record in the whole batch, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(CodecError::Truncated {
                at: self.base + self.pos,
                needed: n,
                len: self.base + self.buf.len(),
            }),
        }
    }
    #[inline]
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    #[inline]
    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    #[inline]
    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    #[inline]
    fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(le_i64(self.take(8)?))
    }
    fn f64(&mut self) -> Result<f64, CodecError> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn dec(&mut self) -> Result<Decimal, CodecError> {
        Ok(Decimal {
            mantissa: self.i64()?,
            scale: self.u8()?,
        })
    }
    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn str(&mut self) -> Result<&'a str, CodecError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| CodecError::BadUtf8 { at: self.base })
    }
    fn levels(&mut self) -> Result<Levels<'a>, CodecError> {
        let n = self.u32()? as usize;
        let bytes = n.checked_mul(16).ok_or(CodecError::BadLength {
            at: self.base,
            len: n as u32,
        })?;
        Ok(Levels::Wire(self.take(bytes)?))
    }
    fn enum_byte<T: WireEnum>(&mut self) -> Result<T, CodecError> {
        let v = self.u8()?;
        T::from_wire(v).ok_or(CodecError::BadEnum {
            at: self.base,
            field: T::FIELD,
            value: v,
        })
    }
}

/// Checks a batch header; returns the record count.
fn read_header(buf: &[u8], magic: [u8; 4]) -> Result<u32, CodecError> {
    if buf.len() < BATCH_HEADER_LEN {
        return Err(CodecError::Truncated {
            at: 0,
            needed: BATCH_HEADER_LEN,
            len: buf.len(),
        });
    }
    let found: [u8; 4] = buf[0..4].try_into().unwrap();
    if found != magic {
        return Err(CodecError::BadMagic {
            found,
            expected: magic,
        });
    }
    let layout = u16::from_le_bytes([buf[4], buf[5]]);
    if layout != LAYOUT_VERSION {
        return Err(CodecError::LayoutVersion {
            found: layout,
            expected: LAYOUT_VERSION,
        });
    }
    Ok(u32::from_le_bytes(buf[8..12].try_into().unwrap()))
}

/// Splits the next length-prefixed record off `buf[pos..]`.
#[inline(always)]
fn next_record(buf: &[u8], pos: usize) -> Result<&[u8], CodecError> {
    if buf.len() - pos < 4 {
        return Err(CodecError::Truncated {
            at: pos,
            needed: 4,
            len: buf.len(),
        });
    }
    let len = u32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap());
    let l = len as usize;
    if l < 4 {
        return Err(CodecError::BadLength { at: pos, len });
    }
    if buf.len() - pos < l {
        return Err(CodecError::Truncated {
            at: pos,
            needed: l,
            len: buf.len(),
        });
    }
    Ok(&buf[pos..pos + l])
}

/// Walks the records of a batch: at most `count`, stopping after the first error, and
/// reporting a count that disagrees with the buffer.
#[derive(Clone)]
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    count: u32,
    seen: u32,
    done: bool,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8], magic: [u8; 4]) -> Result<Self, CodecError> {
        let count = read_header(buf, magic)?;
        Ok(Self {
            buf,
            pos: BATCH_HEADER_LEN,
            count,
            seen: 0,
            done: false,
        })
    }

    /// Generic over the decoder (not a fn pointer) so it is inlined into the hot loop.
    #[inline(always)]
    fn step<T>(
        &mut self,
        decode: impl FnOnce(&'a [u8], usize) -> Result<T, CodecError>,
    ) -> Option<Result<T, CodecError>> {
        if self.done {
            return None;
        }
        let at_end = self.pos == self.buf.len();
        if self.seen == self.count || at_end {
            self.done = true;
            return match (self.seen == self.count, at_end) {
                (true, true) => None,
                (true, false) => Some(Err(CodecError::CountMismatch {
                    header: self.count,
                    found: self.count + 1,
                })),
                _ => Some(Err(CodecError::CountMismatch {
                    header: self.count,
                    found: self.seen,
                })),
            };
        }
        self.seen += 1;
        let item = next_record(self.buf, self.pos).and_then(|rec| {
            let at = self.pos;
            self.pos += rec.len();
            decode(rec, at)
        });
        self.done = item.is_err();
        Some(item)
    }
}

/// Iterates the events of a batch without copying.
#[derive(Clone)]
pub struct EventBatch<'a> {
    cur: Cursor<'a>,
}

impl<'a> EventBatch<'a> {
    /// Checks the header. Records are checked as they are read.
    pub fn new(buf: &'a [u8]) -> Result<Self, CodecError> {
        Ok(Self {
            cur: Cursor::new(buf, EVENT_MAGIC)?,
        })
    }

    /// Number of events the header announces.
    pub fn count(&self) -> u32 {
        self.cur.count
    }

    /// Decodes the whole batch, failing on the first bad record.
    pub fn collect_all(self) -> Result<Vec<Event<'a>>, CodecError> {
        self.collect()
    }

    /// Calls `f` on each event in order; stops at the first bad record. The hot path: no
    /// `Option<Result<Event>>` per event, each event decoded in place.
    #[inline(always)]
    pub fn for_each_event(self, mut f: impl FnMut(&Event<'a>)) -> Result<(), CodecError> {
        let Cursor {
            buf,
            mut pos,
            count,
            ..
        } = self.cur;
        for _ in 0..count {
            if pos == buf.len() {
                return Err(CodecError::CountMismatch {
                    header: count,
                    found: 0,
                });
            }
            let rec = next_record(buf, pos)?;
            // Quotes are built right here, as a local handed to `f` by reference: returning
            // them through `Result` costs a struct copy that, in Wasm, stalls on
            // store-to-load forwarding.
            match quote_fast(rec) {
                Some(q) => f(&Event {
                    header: decode_header(rec),
                    payload: Payload::Quote(q),
                }),
                None => f(&decode_event(rec, pos)?),
            }
            pos += rec.len();
        }
        match pos == buf.len() {
            true => Ok(()),
            false => Err(CodecError::CountMismatch {
                header: count,
                found: count + 1,
            }),
        }
    }
}

/// The fixed header of a record at least `EVENT_HEADER_LEN` long.
#[inline(always)]
fn decode_header(rec: &[u8]) -> EventHeader {
    EventHeader {
        px_scale: rec[5],
        qty_scale: rec[6],
        stream: u32::from_le_bytes(rec[8..12].try_into().unwrap()),
        instrument: u32::from_le_bytes(rec[12..16].try_into().unwrap()),
        seq: u64::from_le_bytes(rec[16..24].try_into().unwrap()),
        time_ns: le_i64(&rec[24..32]),
    }
}

/// The most common record: a quote has a fixed size, so one length check covers every field.
#[inline(always)]
fn quote_fast(rec: &[u8]) -> Option<Quote> {
    if rec.len() != EVENT_HEADER_LEN + 32 || rec[4] != EventKind::Quote as u8 {
        return None;
    }
    let q = &rec[EVENT_HEADER_LEN..];
    Some(Quote {
        bid_px: le_i64(&q[0..8]),
        bid_qty: le_i64(&q[8..16]),
        ask_px: le_i64(&q[16..24]),
        ask_qty: le_i64(&q[24..32]),
    })
}

/// Decodes one event record found at offset `base` of its batch.
#[inline(always)]
fn decode_event(rec: &[u8], base: usize) -> Result<Event<'_>, CodecError> {
    if rec.len() < EVENT_HEADER_LEN {
        return Err(CodecError::BadLength {
            at: base,
            len: rec.len() as u32,
        });
    }
    let kind_byte = rec[4];
    let header = decode_header(rec);
    if let Some(q) = quote_fast(rec) {
        return Ok(Event {
            header,
            payload: Payload::Quote(q),
        });
    }
    let mut r = Reader {
        buf: rec,
        pos: EVENT_HEADER_LEN,
        base,
    };
    let kind = EventKind::from_u8(kind_byte).ok_or(CodecError::UnknownKind {
        at: base,
        kind: kind_byte,
    })?;
    let payload = match kind {
        EventKind::Quote => Payload::Quote(Quote {
            bid_px: r.i64()?,
            bid_qty: r.i64()?,
            ask_px: r.i64()?,
            ask_qty: r.i64()?,
        }),
        EventKind::Trade => Payload::Trade(Trade {
            price: r.i64()?,
            qty: r.i64()?,
            trade_id: r.u64()?,
            aggressor: r.enum_byte::<Aggressor>()?,
        }),
        EventKind::BookSnapshot => Payload::BookSnapshot(BookSnapshot {
            update_id: r.u64()?,
            bids: r.levels()?,
            asks: r.levels()?,
        }),
        EventKind::BookDelta => Payload::BookDelta(BookDelta {
            first_update_id: r.u64()?,
            final_update_id: r.u64()?,
            prev_final_update_id: r.u64()?,
            bids: r.levels()?,
            asks: r.levels()?,
        }),
        EventKind::OrderSubmitted => Payload::OrderSubmitted(OrderSubmitted {
            client_order_id: r.u64()?,
            side: r.enum_byte::<Side>()?,
            order_type: r.enum_byte::<OrderType>()?,
            tif: r.enum_byte::<TimeInForce>()?,
            price: r.i64()?,
            qty: r.i64()?,
        }),
        EventKind::OrderAcked => Payload::OrderAcked(OrderAcked {
            client_order_id: r.u64()?,
            venue_order_id: r.u64()?,
        }),
        EventKind::OrderRejected => Payload::OrderRejected(OrderRejected {
            client_order_id: r.u64()?,
            reason: r.str()?,
        }),
        EventKind::OrderCancelled => Payload::OrderCancelled(OrderCancelled {
            client_order_id: r.u64()?,
        }),
        EventKind::Fill => Payload::Fill(Fill {
            client_order_id: r.u64()?,
            trade_id: r.u64()?,
            side: r.enum_byte::<Side>()?,
            liquidity: r.enum_byte::<Liquidity>()?,
            is_final: match r.u8()? {
                0 => false,
                1 => true,
                v => {
                    return Err(CodecError::BadEnum {
                        at: base,
                        field: "is_final",
                        value: v,
                    });
                }
            },
            price: r.i64()?,
            qty: r.i64()?,
            fee: r.dec()?,
        }),
        EventKind::Position => Payload::Position(Position {
            qty: r.i64()?,
            avg_price: r.i64()?,
            realized_pnl: r.dec()?,
        }),
        EventKind::Balance => Payload::Balance(Balance {
            total: r.dec()?,
            free: r.dec()?,
            locked: r.dec()?,
        }),
        EventKind::RiskDecision => Payload::RiskDecision(RiskDecision {
            client_order_id: r.u64()?,
            verdict: r.enum_byte::<RiskVerdict>()?,
            reason_code: r.str()?,
        }),
        EventKind::GuardrailTransition => Payload::GuardrailTransition(GuardrailTransition {
            prev_mode: r.str()?,
            next_mode: r.str()?,
            trigger_metric: r.str()?,
            value: r.dec()?,
            reason: r.str()?,
        }),
        EventKind::Funding => Payload::Funding(Funding {
            rate: r.dec()?,
            mark_price: r.i64()?,
            payment: r.dec()?,
        }),
        EventKind::Custom => Payload::Custom(Custom {
            type_name: r.str()?,
            json: r.bytes()?,
        }),
    };
    if r.pos != rec.len() {
        return Err(CodecError::BadLength {
            at: base,
            len: rec.len() as u32,
        });
    }
    Ok(Event { header, payload })
}

impl<'a> Iterator for EventBatch<'a> {
    type Item = Result<Event<'a>, CodecError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.cur.step(decode_event)
    }
}

// ---------------------------------------------------------------------------------------------
// Outputs

/// A new order a strategy wants placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewOrder {
    pub instrument: u32,
    pub client_order_id: u64,
    pub side: Side,
    pub order_type: OrderType,
    pub tif: TimeInForce,
    /// Limit price mantissa at `px_scale` (0 for market orders).
    pub price: i64,
    pub qty: i64,
    pub px_scale: u8,
    pub qty_scale: u8,
}

/// What a guest emits, each tagged with the seq of the event that caused it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Output<'a> {
    NewOrder(NewOrder),
    Cancel {
        instrument: u32,
        client_order_id: u64,
    },
    Log {
        level: LogLevel,
        message: &'a str,
    },
    Metric {
        name: &'a str,
        value: f64,
    },
}

/// An output record with its cause.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputRecord<'a> {
    pub cause_seq: u64,
    pub output: Output<'a>,
}

const OUT_NEW_ORDER: u8 = 1;
const OUT_CANCEL: u8 = 2;
const OUT_LOG: u8 = 3;
const OUT_METRIC: u8 = 4;

/// Builds an output batch in a caller-owned buffer.
pub struct OutputBatchWriter {
    w: Writer,
}

impl OutputBatchWriter {
    /// Starts a batch in `buf`, clearing it.
    pub fn new(buf: Vec<u8>) -> Self {
        Self {
            w: Writer::begin(buf, OUTPUT_MAGIC),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.w.buf
    }

    pub fn finish(self) -> Vec<u8> {
        self.w.buf
    }

    pub fn count(&self) -> u32 {
        self.w.count
    }

    pub fn push(&mut self, cause_seq: u64, output: &Output<'_>) {
        let start = self.w.buf.len();
        let b = &mut self.w.buf;
        put_u32(b, 0);
        let kind = match output {
            Output::NewOrder(_) => OUT_NEW_ORDER,
            Output::Cancel { .. } => OUT_CANCEL,
            Output::Log { .. } => OUT_LOG,
            Output::Metric { .. } => OUT_METRIC,
        };
        b.extend_from_slice(&[kind, 0, 0, 0]);
        put_u64(b, cause_seq);
        match output {
            Output::NewOrder(o) => {
                put_u32(b, o.instrument);
                put_u64(b, o.client_order_id);
                b.extend_from_slice(&[
                    o.side as u8,
                    o.order_type as u8,
                    o.tif as u8,
                    o.px_scale,
                    o.qty_scale,
                ]);
                put_i64(b, o.price);
                put_i64(b, o.qty);
            }
            Output::Cancel {
                instrument,
                client_order_id,
            } => {
                put_u32(b, *instrument);
                put_u64(b, *client_order_id);
            }
            Output::Log { level, message } => {
                put_u8(b, *level as u8);
                put_bytes(b, message.as_bytes());
            }
            Output::Metric { name, value } => {
                put_bytes(b, name.as_bytes());
                put_f64(b, *value);
            }
        }
        self.w.finish_record(start);
    }
}

/// Iterates the records of an output batch.
#[derive(Clone)]
pub struct OutputBatch<'a> {
    cur: Cursor<'a>,
}

impl<'a> OutputBatch<'a> {
    pub fn new(buf: &'a [u8]) -> Result<Self, CodecError> {
        Ok(Self {
            cur: Cursor::new(buf, OUTPUT_MAGIC)?,
        })
    }

    pub fn count(&self) -> u32 {
        self.cur.count
    }
}

/// Decodes one output record found at offset `base` of its batch.
fn decode_output(rec: &[u8], base: usize) -> Result<OutputRecord<'_>, CodecError> {
    if rec.len() < OUTPUT_HEADER_LEN {
        return Err(CodecError::BadLength {
            at: base,
            len: rec.len() as u32,
        });
    }
    let cause_seq = u64::from_le_bytes(rec[8..16].try_into().unwrap());
    let mut r = Reader {
        buf: rec,
        pos: OUTPUT_HEADER_LEN,
        base,
    };
    let output = match rec[4] {
        OUT_NEW_ORDER => {
            let instrument = r.u32()?;
            let client_order_id = r.u64()?;
            let side = r.enum_byte::<Side>()?;
            let order_type = r.enum_byte::<OrderType>()?;
            let tif = r.enum_byte::<TimeInForce>()?;
            let px_scale = r.u8()?;
            let qty_scale = r.u8()?;
            Output::NewOrder(NewOrder {
                instrument,
                client_order_id,
                side,
                order_type,
                tif,
                price: r.i64()?,
                qty: r.i64()?,
                px_scale,
                qty_scale,
            })
        }
        OUT_CANCEL => Output::Cancel {
            instrument: r.u32()?,
            client_order_id: r.u64()?,
        },
        OUT_LOG => Output::Log {
            level: r.enum_byte::<LogLevel>()?,
            message: r.str()?,
        },
        OUT_METRIC => Output::Metric {
            name: r.str()?,
            value: r.f64()?,
        },
        kind => return Err(CodecError::UnknownKind { at: base, kind }),
    };
    if r.pos != rec.len() {
        return Err(CodecError::BadLength {
            at: base,
            len: rec.len() as u32,
        });
    }
    Ok(OutputRecord { cause_seq, output })
}

impl<'a> Iterator for OutputBatch<'a> {
    type Item = Result<OutputRecord<'a>, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.cur.step(decode_output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Owned backing data for one arbitrary event (the codec types borrow).
    #[derive(Debug, Clone)]
    struct Owned {
        header: EventHeader,
        kind: EventKind,
        ints: [i64; 6],
        ids: [u64; 3],
        bytes: [u8; 4],
        texts: [String; 4],
        json: Vec<u8>,
        bids: Vec<Level>,
        asks: Vec<Level>,
    }

    impl Owned {
        fn payload(&self) -> Payload<'_> {
            let [a, b, c, d, e, f] = self.ints;
            let [i, j, k] = self.ids;
            let dec = |m: i64, s: u8| Decimal::new(m, s % 19);
            let side = if self.bytes[0].is_multiple_of(2) {
                Side::Buy
            } else {
                Side::Sell
            };
            let t = &self.texts;
            match self.kind {
                EventKind::Quote => Payload::Quote(Quote {
                    bid_px: a,
                    bid_qty: b,
                    ask_px: c,
                    ask_qty: d,
                }),
                EventKind::Trade => Payload::Trade(Trade {
                    price: a,
                    qty: b,
                    trade_id: i,
                    aggressor: Aggressor::ALL[self.bytes[1] as usize % 3],
                }),
                EventKind::BookSnapshot => Payload::BookSnapshot(BookSnapshot {
                    update_id: i,
                    bids: Levels::Slice(&self.bids),
                    asks: Levels::Slice(&self.asks),
                }),
                EventKind::BookDelta => Payload::BookDelta(BookDelta {
                    first_update_id: i,
                    final_update_id: j,
                    prev_final_update_id: k,
                    bids: Levels::Slice(&self.bids),
                    asks: Levels::Slice(&self.asks),
                }),
                EventKind::OrderSubmitted => Payload::OrderSubmitted(OrderSubmitted {
                    client_order_id: i,
                    side,
                    order_type: OrderType::ALL[self.bytes[1] as usize % 2],
                    tif: TimeInForce::ALL[self.bytes[2] as usize % 4],
                    price: a,
                    qty: b,
                }),
                EventKind::OrderAcked => Payload::OrderAcked(OrderAcked {
                    client_order_id: i,
                    venue_order_id: j,
                }),
                EventKind::OrderRejected => Payload::OrderRejected(OrderRejected {
                    client_order_id: i,
                    reason: &t[0],
                }),
                EventKind::OrderCancelled => {
                    Payload::OrderCancelled(OrderCancelled { client_order_id: i })
                }
                EventKind::Fill => Payload::Fill(Fill {
                    client_order_id: i,
                    trade_id: j,
                    side,
                    liquidity: Liquidity::ALL[self.bytes[1] as usize % 3],
                    is_final: self.bytes[2] % 2 == 1,
                    price: a,
                    qty: b,
                    fee: dec(c, self.bytes[3]),
                }),
                EventKind::Position => Payload::Position(Position {
                    qty: a,
                    avg_price: b,
                    realized_pnl: dec(c, self.bytes[3]),
                }),
                EventKind::Balance => Payload::Balance(Balance {
                    total: dec(a, 1),
                    free: dec(b, 2),
                    locked: dec(c, self.bytes[3]),
                }),
                EventKind::RiskDecision => Payload::RiskDecision(RiskDecision {
                    client_order_id: i,
                    verdict: RiskVerdict::ALL[self.bytes[1] as usize % 3],
                    reason_code: &t[0],
                }),
                EventKind::GuardrailTransition => {
                    Payload::GuardrailTransition(GuardrailTransition {
                        prev_mode: &t[0],
                        next_mode: &t[1],
                        trigger_metric: &t[2],
                        value: dec(e, self.bytes[3]),
                        reason: &t[3],
                    })
                }
                EventKind::Funding => Payload::Funding(Funding {
                    rate: dec(d, 8),
                    mark_price: e,
                    payment: dec(f, self.bytes[3]),
                }),
                EventKind::Custom => Payload::Custom(Custom {
                    type_name: &t[0],
                    json: &self.json,
                }),
            }
        }
    }

    fn level() -> impl Strategy<Value = Level> {
        (any::<i64>(), any::<i64>()).prop_map(|(price, qty)| Level { price, qty })
    }

    fn owned() -> impl Strategy<Value = Owned> {
        let header = (
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            any::<i64>(),
            any::<u8>(),
            any::<u8>(),
        )
            .prop_map(|(stream, instrument, seq, time_ns, px_scale, qty_scale)| {
                EventHeader {
                    stream,
                    instrument,
                    seq,
                    time_ns,
                    px_scale,
                    qty_scale,
                }
            });
        (
            header,
            proptest::sample::select(EventKind::ALL),
            any::<[i64; 6]>(),
            any::<[u64; 3]>(),
            any::<[u8; 4]>(),
            any::<[String; 4]>(),
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::collection::vec(level(), 0..8),
            proptest::collection::vec(level(), 0..8),
        )
            .prop_map(
                |(header, kind, ints, ids, bytes, texts, json, bids, asks)| Owned {
                    header,
                    kind,
                    ints,
                    ids,
                    bytes,
                    texts,
                    json,
                    bids,
                    asks,
                },
            )
    }

    fn encode(events: &[Owned]) -> Vec<u8> {
        let mut w = EventBatchWriter::new(Vec::new());
        for e in events {
            w.push(&e.header, &e.payload());
        }
        w.finish()
    }

    proptest! {
        #[test]
        fn event_batches_round_trip(events in proptest::collection::vec(owned(), 0..24)) {
            let bytes = encode(&events);
            let decoded = EventBatch::new(&bytes).unwrap().collect_all().unwrap();
            prop_assert_eq!(decoded.len(), events.len());
            for (d, e) in decoded.iter().zip(&events) {
                prop_assert_eq!(d.header, e.header);
                prop_assert_eq!(d.payload, e.payload());
            }
        }

        #[test]
        fn truncated_batches_are_errors_not_panics(events in proptest::collection::vec(owned(), 1..6), cut in any::<prop::sample::Index>()) {
            let bytes = encode(&events);
            let cut = cut.index(bytes.len());
            let result = EventBatch::new(&bytes[..cut]).and_then(|b| b.collect_all());
            prop_assert!(result.is_err(), "a batch cut at {} of {} bytes decoded", cut, bytes.len());
        }

        #[test]
        fn output_batches_round_trip(seqs in proptest::collection::vec(any::<u64>(), 0..16), msg in ".*", v in any::<f64>()) {
            let mut w = OutputBatchWriter::new(Vec::new());
            let order = NewOrder { instrument: 3, client_order_id: 9, side: Side::Sell, order_type: OrderType::Limit, tif: TimeInForce::PostOnly, price: -5, qty: 7, px_scale: 2, qty_scale: 8 };
            let outs = [
                Output::NewOrder(order),
                Output::Cancel { instrument: 1, client_order_id: 2 },
                Output::Log { level: LogLevel::Warn, message: &msg },
                Output::Metric { name: "m", value: v },
            ];
            for (i, s) in seqs.iter().enumerate() {
                w.push(*s, &outs[i % 4]);
            }
            let bytes = w.finish();
            let got: Vec<_> = OutputBatch::new(&bytes).unwrap().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(got.len(), seqs.len());
            for (i, r) in got.iter().enumerate() {
                prop_assert_eq!(r.cause_seq, seqs[i]);
                match (r.output, outs[i % 4]) {
                    (Output::Metric { value: a, .. }, Output::Metric { value: b, .. }) => prop_assert_eq!(a.to_bits(), b.to_bits()),
                    (a, b) => prop_assert_eq!(a, b),
                }
            }
        }
    }

    #[test]
    fn header_errors_say_what_is_wrong() {
        let good = encode(&[]);
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(
            EventBatch::new(&bad),
            Err(CodecError::BadMagic { .. })
        ));
        let mut bad = good.clone();
        bad[4] = 9;
        let err = EventBatch::new(&bad).err().unwrap();
        assert_eq!(
            err,
            CodecError::LayoutVersion {
                found: 9,
                expected: LAYOUT_VERSION
            }
        );
        assert!(err.to_string().contains("v9"));
        assert!(matches!(
            EventBatch::new(&good[..10]),
            Err(CodecError::Truncated { .. })
        ));
        // An output batch is not an event batch.
        let out = OutputBatchWriter::new(Vec::new()).finish();
        assert!(matches!(
            EventBatch::new(&out),
            Err(CodecError::BadMagic { .. })
        ));
    }

    #[test]
    fn count_must_match_records() {
        let h = EventHeader {
            seq: 1,
            ..Default::default()
        };
        let mut w = EventBatchWriter::new(Vec::new());
        w.push(
            &h,
            &Payload::OrderCancelled(OrderCancelled { client_order_id: 1 }),
        );
        let mut bytes = w.finish();
        bytes[8] = 2;
        let r = EventBatch::new(&bytes).unwrap().collect_all();
        assert_eq!(
            r.unwrap_err(),
            CodecError::CountMismatch {
                header: 2,
                found: 1
            }
        );
        bytes[8] = 0;
        let r = EventBatch::new(&bytes).unwrap().collect_all();
        assert!(matches!(
            r,
            Err(CodecError::CountMismatch { header: 0, .. })
        ));
    }

    #[test]
    fn unknown_kinds_and_enum_values_are_refused() {
        let h = EventHeader {
            seq: 1,
            ..Default::default()
        };
        let mut w = EventBatchWriter::new(Vec::new());
        w.push(
            &h,
            &Payload::Trade(Trade {
                price: 1,
                qty: 1,
                trade_id: 1,
                aggressor: Aggressor::Buy,
            }),
        );
        let good = w.finish();
        let mut bad = good.clone();
        bad[BATCH_HEADER_LEN + 4] = 200;
        assert_eq!(
            EventBatch::new(&bad).unwrap().collect_all().unwrap_err(),
            CodecError::UnknownKind { at: 16, kind: 200 }
        );
        let mut bad = good.clone();
        *bad.last_mut().unwrap() = 7; // the aggressor byte
        assert!(matches!(
            EventBatch::new(&bad).unwrap().collect_all(),
            Err(CodecError::BadEnum {
                field: "aggressor",
                value: 7,
                ..
            })
        ));
    }
}
