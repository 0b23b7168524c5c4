//! The typed payload of an event, tagged by `event_type` (the seeds' taxonomy), and the
//! names its enums are written with.

use serde::{Deserialize, Serialize};

use super::Dec;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SideName {
    Buy,
    Sell,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TifName {
    #[default]
    Gtc,
    Ioc,
    Fok,
    PostOnly,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OrderTypeName {
    Limit,
    Market,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LiquidityName {
    Maker,
    Taker,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VerdictName {
    Allow,
    Deny,
    Reduce,
}

/// A `[price, qty]` level.
pub type LevelPair = [Dec; 2];

/// The typed payload, tagged by `event_type` (the taxonomy of the seeds).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(
    tag = "event_type",
    content = "payload",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Body {
    Quote {
        bid_px: Dec,
        bid_qty: Dec,
        ask_px: Dec,
        ask_qty: Dec,
        /// The venue's book update id this quote reflects, where it sends one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        update_id: Option<u64>,
    },
    Trade {
        price: Dec,
        qty: Dec,
        trade_id: u64,
        #[serde(default)]
        aggressor: Option<SideName>,
    },
    BookSnapshot {
        update_id: u64,
        bids: Vec<LevelPair>,
        asks: Vec<LevelPair>,
    },
    BookDelta {
        first_update_id: u64,
        final_update_id: u64,
        #[serde(default)]
        prev_final_update_id: u64,
        bids: Vec<LevelPair>,
        asks: Vec<LevelPair>,
    },
    OrderSubmitted {
        client_order_id: u64,
        side: SideName,
        order_type: OrderTypeName,
        #[serde(default)]
        tif: TifName,
        #[serde(default)]
        price: Option<Dec>,
        qty: Dec,
    },
    OrderAcked {
        client_order_id: u64,
        venue_order_id: u64,
    },
    OrderRejected {
        client_order_id: u64,
        reason: String,
    },
    OrderCancelled {
        client_order_id: u64,
    },
    Fill {
        client_order_id: u64,
        trade_id: u64,
        side: SideName,
        #[serde(default)]
        liquidity: Option<LiquidityName>,
        #[serde(default)]
        is_final: bool,
        price: Dec,
        qty: Dec,
        #[serde(default)]
        fee: Dec,
    },
    Position {
        qty: Dec,
        avg_price: Dec,
        #[serde(default)]
        realized_pnl: Dec,
    },
    Balance {
        total: Dec,
        free: Dec,
        #[serde(default)]
        locked: Dec,
    },
    RiskDecision {
        client_order_id: u64,
        decision: VerdictName,
        reason_code: String,
    },
    GuardrailTransition {
        prev_mode: String,
        next_mode: String,
        trigger_metric: String,
        value: Dec,
        reason: String,
    },
    Funding {
        rate: Dec,
        mark_price: Dec,
        payment: Dec,
    },
    Custom {
        type_name: String,
        data: serde_json::Value,
    },
}

impl Body {
    /// The `event_type` string.
    pub fn event_type(&self) -> &'static str {
        match self {
            Body::Quote { .. } => "quote",
            Body::Trade { .. } => "trade",
            Body::BookSnapshot { .. } => "book_snapshot",
            Body::BookDelta { .. } => "book_delta",
            Body::OrderSubmitted { .. } => "order_submitted",
            Body::OrderAcked { .. } => "order_acked",
            Body::OrderRejected { .. } => "order_rejected",
            Body::OrderCancelled { .. } => "order_cancelled",
            Body::Fill { .. } => "fill",
            Body::Position { .. } => "position",
            Body::Balance { .. } => "balance",
            Body::RiskDecision { .. } => "risk_decision",
            Body::GuardrailTransition { .. } => "guardrail_transition",
            Body::Funding { .. } => "funding",
            Body::Custom { .. } => "custom",
        }
    }

    /// (largest price scale, largest quantity scale) of the fields that use the header scales.
    pub(super) fn scales(&self) -> (u8, u8) {
        let mx = |it: &mut dyn Iterator<Item = Dec>| it.map(Dec::scale).max().unwrap_or(0);
        let levels = |b: &[LevelPair], a: &[LevelPair]| {
            (
                mx(&mut b.iter().chain(a).map(|l| l[0])),
                mx(&mut b.iter().chain(a).map(|l| l[1])),
            )
        };
        match self {
            Body::Quote {
                bid_px,
                bid_qty,
                ask_px,
                ask_qty,
                ..
            } => (
                bid_px.scale().max(ask_px.scale()),
                bid_qty.scale().max(ask_qty.scale()),
            ),
            Body::Trade { price, qty, .. } | Body::Fill { price, qty, .. } => {
                (price.scale(), qty.scale())
            }
            Body::BookSnapshot { bids, asks, .. } | Body::BookDelta { bids, asks, .. } => {
                levels(bids, asks)
            }
            Body::OrderSubmitted { price, qty, .. } => (price.map_or(0, Dec::scale), qty.scale()),
            Body::Position { qty, avg_price, .. } => (avg_price.scale(), qty.scale()),
            Body::Funding { mark_price, .. } => (mark_price.scale(), 0),
            _ => (0, 0),
        }
    }
}
