//! The decoded forms of events: header, typed payloads, and borrowed book levels.

use std::fmt;

use super::wire::le_i64;
use super::{
    Aggressor, Decimal, EventKind, Liquidity, OrderType, RiskVerdict, Side, TimeInForce, pow10,
};

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
