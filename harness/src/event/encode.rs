//! Envelopes into packed guest batches: the run's ids (stream id, [`instrument_id`] of each
//! symbol) and each event's scales, exact. The one place an envelope becomes a codec record.

use std::collections::BTreeMap;

use tapedeck_guest::codec::{self, EventBatchWriter, EventHeader, Level, Payload};

use super::{
    Body, Dec, Envelope, LevelPair, LiquidityName, OrderTypeName, SideName, TifName, VerdictName,
};
use crate::error::{Error, Result};

impl Envelope {
    /// Encodes this event into a guest batch; `stream` and `instrument` are the run's ids.
    pub fn encode_into(
        &self,
        w: &mut EventBatchWriter,
        stream: u32,
        instrument: u32,
        scratch: &mut Scratch,
    ) -> std::result::Result<(), String> {
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

/// The id guests see for an instrument symbol: the first four bytes of its SHA-256 (never 0,
/// which means "no instrument"). A pure function of the symbol, so a projector's state does
/// not depend on where a replay starts, which streams run with it, or which store it reads.
pub fn instrument_id(symbol: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(symbol.as_bytes());
    u32::from_le_bytes([d[0], d[1], d[2], d[3]]).max(1)
}

/// The instrument table guests get for a stream ([`crate::store::EventSource::instruments`]:
/// symbol by [`instrument_id`]).
pub fn instrument_table(
    table: &std::collections::BTreeMap<u32, String>,
) -> tapedeck_guest::Instruments {
    tapedeck_guest::Instruments::new(table.iter().map(|(id, s)| (*id, s.clone())))
}

/// Encodes one stream's envelopes into guest batches with the run's ids: the stream's id and
/// [`instrument_id`] of each event's instrument.
#[derive(Debug)]
pub struct StreamEncoder {
    stream_id: u32,
    instruments: BTreeMap<String, u32>,
    scratch: Scratch,
}

impl StreamEncoder {
    pub fn new(stream_id: u32) -> Self {
        StreamEncoder {
            stream_id,
            instruments: BTreeMap::new(),
            scratch: Scratch::default(),
        }
    }

    pub fn encode(&mut self, e: &Envelope, w: &mut EventBatchWriter) -> Result<()> {
        let inst = match &e.instrument {
            Some(sym) => match self.instruments.get(sym) {
                Some(id) => *id,
                None => *self
                    .instruments
                    .entry(sym.clone())
                    .or_insert_with(|| instrument_id(sym)),
            },
            None => 0,
        };
        e.encode_into(w, self.stream_id, inst, &mut self.scratch)
            .map_err(|message| Error::BadEvent {
                stream: e.stream_key.clone(),
                seq: e.seq,
                message,
            })
    }
}
