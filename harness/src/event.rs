//! The event envelope: one shape for every store (files, Postgres, ClickHouse) and the source
//! of the packed batches guests see.
//!
//! Prices, quantities and amounts are decimals written as strings (`"65432.10"`), parsed into
//! exact fixed-point mantissas; each event's batch scales are the largest its fields use, so
//! nothing is rounded on the way to a guest.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tapedeck_guest::codec::{self, Decimal, EventHeader, Level, Payload};

/// A decimal as written: mantissa and number of fractional digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Dec(pub Decimal);

impl Dec {
    pub fn new(mantissa: i64, scale: u8) -> Self {
        Dec(Decimal::new(mantissa, scale))
    }

    pub fn scale(self) -> u8 {
        self.0.scale
    }

    /// The mantissa at a scale at least this one's (exact; `None` on overflow).
    pub fn at(self, scale: u8) -> Option<i64> {
        let up = scale.checked_sub(self.0.scale)? as u32;
        self.0.mantissa.checked_mul(10i64.checked_pow(up)?)
    }

    pub fn to_f64(self) -> f64 {
        self.0.to_f64()
    }
}

impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Decimal { mantissa, scale } = self.0;
        if scale == 0 {
            return write!(f, "{mantissa}");
        }
        let digits = mantissa.unsigned_abs().to_string();
        let s = scale as usize;
        let (int, frac) = if digits.len() > s {
            digits.split_at(digits.len() - s)
        } else {
            ("0", digits.as_str())
        };
        let sign = if mantissa < 0 { "-" } else { "" };
        write!(f, "{sign}{int}.{frac:0>s$}")
    }
}

impl fmt::Debug for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dec({self})")
    }
}

impl FromStr for Dec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("not a decimal: {s:?}");
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let scale = u8::try_from(frac.len())
            .ok()
            .filter(|s| *s <= 18)
            .ok_or_else(bad)?;
        let mut m: i64 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            m = m
                .checked_mul(10)
                .and_then(|m| m.checked_add((b - b'0') as i64))
                .ok_or_else(|| format!("decimal out of range: {s:?}"))?;
        }
        Ok(Dec::new(if neg { -m } else { m }, scale))
    }
}

impl Serialize for Dec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string like \"65432.10\" (or an integer)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dec, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dec, E> {
                Ok(Dec::new(v, 0))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dec, E> {
                i64::try_from(v)
                    .map(|v| Dec::new(v, 0))
                    .map_err(|_| E::custom("integer out of range"))
            }
        }
        d.deserialize_any(V)
    }
}

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
    fn scales(&self) -> (u8, u8) {
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

/// Tenancy columns (seeds 000/001/003); all optional.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Tenancy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
}

/// Correlation columns; all optional.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Correlation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
}

/// The full envelope of one recorded event.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Envelope {
    /// ULID; derived from event time and (stream, seq) when not given, so imports are
    /// deterministic.
    pub event_id: String,
    pub stream_key: String,
    /// Per stream, gapless, from 1.
    pub seq: u64,
    /// Event time, ns since the Unix epoch.
    pub occurred_at: i64,
    /// When it was recorded, ns since the Unix epoch.
    pub ingested_at: i64,
    /// Instrument symbol (or asset, for balances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instrument: Option<String>,
    #[serde(flatten)]
    pub tenancy: Tenancy,
    #[serde(flatten)]
    pub correlation: Correlation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(flatten)]
    pub body: Body,
}

impl Envelope {
    /// A new envelope with a derived event id.
    pub fn new(
        stream_key: &str,
        seq: u64,
        occurred_at: i64,
        instrument: Option<&str>,
        body: Body,
    ) -> Self {
        Envelope {
            event_id: derived_ulid(occurred_at, stream_key, seq),
            stream_key: stream_key.to_string(),
            seq,
            occurred_at,
            ingested_at: occurred_at,
            instrument: instrument.map(str::to_string),
            tenancy: Tenancy::default(),
            correlation: Correlation::default(),
            idempotency_key: None,
            body,
        }
    }

    /// Encodes this event into a guest batch; `stream` and `instrument` are the run's ids.
    pub fn encode_into(
        &self,
        w: &mut codec::EventBatchWriter,
        stream: u32,
        instrument: u32,
        scratch: &mut Scratch,
    ) -> Result<(), String> {
        let (px_scale, qty_scale) = self.body.scales();
        let header = EventHeader {
            stream,
            instrument,
            seq: self.seq,
            time_ns: self.occurred_at,
            px_scale,
            qty_scale,
        };
        let px = |d: Dec| {
            d.at(px_scale)
                .ok_or_else(|| format!("price {d} out of range at scale {px_scale}"))
        };
        let qty = |d: Dec| {
            d.at(qty_scale)
                .ok_or_else(|| format!("quantity {d} out of range at scale {qty_scale}"))
        };
        let side = |s: SideName| match s {
            SideName::Buy => codec::Side::Buy,
            SideName::Sell => codec::Side::Sell,
        };
        let mut levels = |b: &[LevelPair], a: &[LevelPair]| -> Result<usize, String> {
            scratch.levels.clear();
            for l in b.iter().chain(a) {
                scratch.levels.push(Level {
                    price: px(l[0])?,
                    qty: qty(l[1])?,
                });
            }
            Ok(b.len())
        };
        let payload = match &self.body {
            Body::Quote {
                bid_px,
                bid_qty,
                ask_px,
                ask_qty,
                ..
            } => Payload::Quote(codec::Quote {
                bid_px: px(*bid_px)?,
                bid_qty: qty(*bid_qty)?,
                ask_px: px(*ask_px)?,
                ask_qty: qty(*ask_qty)?,
            }),
            Body::Trade {
                price,
                qty: q,
                trade_id,
                aggressor,
            } => Payload::Trade(codec::Trade {
                price: px(*price)?,
                qty: qty(*q)?,
                trade_id: *trade_id,
                aggressor: match aggressor {
                    None => codec::Aggressor::Unknown,
                    Some(SideName::Buy) => codec::Aggressor::Buy,
                    Some(SideName::Sell) => codec::Aggressor::Sell,
                },
            }),
            Body::BookSnapshot {
                update_id,
                bids,
                asks,
            } => {
                let n = levels(bids, asks)?;
                let (b, a) = scratch.levels.split_at(n);
                Payload::BookSnapshot(codec::BookSnapshot {
                    update_id: *update_id,
                    bids: codec::Levels::Slice(b),
                    asks: codec::Levels::Slice(a),
                })
            }
            Body::BookDelta {
                first_update_id,
                final_update_id,
                prev_final_update_id,
                bids,
                asks,
            } => {
                let n = levels(bids, asks)?;
                let (b, a) = scratch.levels.split_at(n);
                Payload::BookDelta(codec::BookDelta {
                    first_update_id: *first_update_id,
                    final_update_id: *final_update_id,
                    prev_final_update_id: *prev_final_update_id,
                    bids: codec::Levels::Slice(b),
                    asks: codec::Levels::Slice(a),
                })
            }
            Body::OrderSubmitted {
                client_order_id,
                side: s,
                order_type,
                tif,
                price,
                qty: q,
            } => Payload::OrderSubmitted(codec::OrderSubmitted {
                client_order_id: *client_order_id,
                side: side(*s),
                order_type: match order_type {
                    OrderTypeName::Limit => codec::OrderType::Limit,
                    OrderTypeName::Market => codec::OrderType::Market,
                },
                tif: match tif {
                    TifName::Gtc => codec::TimeInForce::Gtc,
                    TifName::Ioc => codec::TimeInForce::Ioc,
                    TifName::Fok => codec::TimeInForce::Fok,
                    TifName::PostOnly => codec::TimeInForce::PostOnly,
                },
                price: price.map(px).transpose()?.unwrap_or(0),
                qty: qty(*q)?,
            }),
            Body::OrderAcked {
                client_order_id,
                venue_order_id,
            } => Payload::OrderAcked(codec::OrderAcked {
                client_order_id: *client_order_id,
                venue_order_id: *venue_order_id,
            }),
            Body::OrderRejected {
                client_order_id,
                reason,
            } => Payload::OrderRejected(codec::OrderRejected {
                client_order_id: *client_order_id,
                reason,
            }),
            Body::OrderCancelled { client_order_id } => {
                Payload::OrderCancelled(codec::OrderCancelled {
                    client_order_id: *client_order_id,
                })
            }
            Body::Fill {
                client_order_id,
                trade_id,
                side: s,
                liquidity,
                is_final,
                price,
                qty: q,
                fee,
            } => Payload::Fill(codec::Fill {
                client_order_id: *client_order_id,
                trade_id: *trade_id,
                side: side(*s),
                liquidity: match liquidity {
                    None => codec::Liquidity::Unknown,
                    Some(LiquidityName::Maker) => codec::Liquidity::Maker,
                    Some(LiquidityName::Taker) => codec::Liquidity::Taker,
                },
                is_final: *is_final,
                price: px(*price)?,
                qty: qty(*q)?,
                fee: fee.0,
            }),
            Body::Position {
                qty: q,
                avg_price,
                realized_pnl,
            } => Payload::Position(codec::Position {
                qty: qty(*q)?,
                avg_price: px(*avg_price)?,
                realized_pnl: realized_pnl.0,
            }),
            Body::Balance {
                total,
                free,
                locked,
            } => Payload::Balance(codec::Balance {
                total: total.0,
                free: free.0,
                locked: locked.0,
            }),
            Body::RiskDecision {
                client_order_id,
                decision,
                reason_code,
            } => Payload::RiskDecision(codec::RiskDecision {
                client_order_id: *client_order_id,
                verdict: match decision {
                    VerdictName::Allow => codec::RiskVerdict::Allow,
                    VerdictName::Deny => codec::RiskVerdict::Deny,
                    VerdictName::Reduce => codec::RiskVerdict::Reduce,
                },
                reason_code,
            }),
            Body::GuardrailTransition {
                prev_mode,
                next_mode,
                trigger_metric,
                value,
                reason,
            } => Payload::GuardrailTransition(codec::GuardrailTransition {
                prev_mode,
                next_mode,
                trigger_metric,
                value: value.0,
                reason,
            }),
            Body::Funding {
                rate,
                mark_price,
                payment,
            } => Payload::Funding(codec::Funding {
                rate: rate.0,
                mark_price: px(*mark_price)?,
                payment: payment.0,
            }),
            Body::Custom { type_name, data } => {
                scratch.json.clear();
                serde_json::to_writer(&mut scratch.json, data).map_err(|e| e.to_string())?;
                Payload::Custom(codec::Custom {
                    type_name,
                    json: &scratch.json,
                })
            }
        };
        w.push(&header, &payload);
        Ok(())
    }
}

/// Reusable buffers for [`Envelope::encode_into`].
#[derive(Debug, Default)]
pub struct Scratch {
    levels: Vec<Level>,
    json: Vec<u8>,
}

/// A ULID made from the event time (its 48-bit ms prefix) and a hash of (stream, seq) (its
/// 80 random bits): sortable by time, unique per event, the same on every import.
pub fn derived_ulid(occurred_at_ns: i64, stream_key: &str, seq: u64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let ms = (occurred_at_ns.max(0) / 1_000_000) as u128 & ((1 << 48) - 1);
    let mut h = Sha256::new();
    h.update(stream_key.as_bytes());
    h.update(seq.to_le_bytes());
    let d = h.finalize();
    let rand = u128::from_be_bytes(d[..16].try_into().unwrap()) >> 48;
    let v = (ms << 80) | rand;
    (0..26)
        .map(|i| ALPHABET[((v >> (125 - i * 5)) & 31) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_trip_exactly() {
        for s in [
            "0",
            "1",
            "-1",
            "65432.10",
            "0.00012300",
            "-0.5",
            "123456789.12345678",
        ] {
            let d: Dec = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
        }
        assert_eq!("1.50".parse::<Dec>().unwrap().at(4), Some(15000));
        assert_eq!(
            "1.5".parse::<Dec>().unwrap().at(0),
            None,
            "never rounds down"
        );
        for bad in [
            "",
            ".",
            "1.2.3",
            "abc",
            "1e5",
            "--1",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<Dec>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn envelopes_serialize_flat_and_back() {
        let e = Envelope::new(
            "md:binance-spot:BTCUSDT",
            7,
            1_723_075_200_000_000_000,
            Some("BTCUSDT"),
            Body::Quote {
                bid_px: "1.10".parse().unwrap(),
                bid_qty: "2".parse().unwrap(),
                ask_px: "1.2".parse().unwrap(),
                ask_qty: "3".parse().unwrap(),
                update_id: None,
            },
        );
        let json = serde_json::to_string(&e).unwrap();
        assert!(
            json.contains(r#""event_type":"quote","payload":{"bid_px":"1.10""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), e);
        assert_eq!(e.event_id.len(), 26);
        assert_eq!(e.event_id, derived_ulid(e.occurred_at, &e.stream_key, 7));
        assert_ne!(e.event_id, derived_ulid(e.occurred_at, &e.stream_key, 8));
    }

    #[test]
    fn encoding_uses_the_largest_scale_of_the_event() {
        let e = Envelope::new(
            "s",
            1,
            0,
            None,
            Body::Quote {
                bid_px: "1.10".parse().unwrap(),
                bid_qty: "2".parse().unwrap(),
                ask_px: "1.125".parse().unwrap(),
                ask_qty: "3.5".parse().unwrap(),
                update_id: None,
            },
        );
        let mut w = codec::EventBatchWriter::new(Vec::new());
        e.encode_into(&mut w, 1, 2, &mut Scratch::default())
            .unwrap();
        let bytes = w.finish();
        let ev = codec::EventBatch::new(&bytes)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!((ev.header.px_scale, ev.header.qty_scale), (3, 1));
        assert_eq!(
            ev.payload,
            Payload::Quote(codec::Quote {
                bid_px: 1100,
                bid_qty: 20,
                ask_px: 1125,
                ask_qty: 35
            })
        );
    }

    #[test]
    fn unknown_event_types_and_fields_are_refused() {
        let base = r#"{"event_id":"x","stream_key":"s","seq":1,"occurred_at":0,"ingested_at":0,"#;
        let err = serde_json::from_str::<Envelope>(&format!(
            r#"{base}"event_type":"teleport","payload":{{}}}}"#
        ))
        .unwrap_err();
        assert!(err.to_string().contains("teleport"), "{err}");
        let err = serde_json::from_str::<Envelope>(&format!(
            r#"{base}"event_type":"order_cancelled","payload":{{"client_order_id":"x"}}}}"#
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("client_order_id") || err.to_string().contains("invalid type"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod quote_update_id {
    use super::*;

    #[test]
    fn quote_update_ids_survive_a_round_trip() {
        let line = r#"{"event_id":"01J4T6M667PAC4CQD03AC9B2R5","stream_key":"md:binance-spot:BTCUSDT","seq":1,"occurred_at":1723161254087891268,"ingested_at":1723161254087891268,"instrument":"BTCUSDT","event_type":"quote","payload":{"bid_px":"61837.63000000","bid_qty":"3.78826000","ask_px":"61837.64000000","ask_qty":"1.54698000","update_id":50093239212}}"#;
        let e: Envelope = serde_json::from_str(line).unwrap();
        assert!(
            matches!(
                e.body,
                Body::Quote {
                    update_id: Some(50093239212),
                    ..
                }
            ),
            "{:?}",
            e.body
        );
    }
}
