//! What a live session records of its own: the paper venue's orders, acks, cancels and fills
//! in each instrument's exec stream (`exec:<venue>:<symbol>`), and the audit events of its
//! control actions in `live:<session>`.
//!
//! Every exec event names what caused it (`causation_id` = `<stream>:<seq>`) and carries an
//! idempotency key derived from the session, the stream, the seq and the output's index, so
//! the recorder stores it once however often it is submitted.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::decision::{Decision, Output};
use crate::event::{Body, Correlation, Dec, Tenancy};
use crate::recorder::now_ns;
use crate::recorder::protocol::Incoming;
use crate::venue::Trade;

/// Derives the ids of one stream's exec events, and remembers the open orders' ids (a fill
/// carries the id of the order it fills).
#[derive(Debug)]
pub struct ExecIds {
    prefix: String,
    open: std::collections::HashMap<u64, String>,
}

impl ExecIds {
    pub fn new(session: &str, stream: &str) -> Self {
        ExecIds {
            prefix: format!("live:{session}:{stream}"),
            open: Default::default(),
        }
    }

    /// The id of output `index` of the decisions caused by `seq`: what an executor gets as
    /// the client order id, stable across restarts.
    pub fn order_id(&self, seq: u64, index: usize) -> String {
        format!("{}:{seq}:{index}", self.prefix)
    }
}

fn dec9(x: f64) -> Dec {
    Dec::new((x * 1e9).round() as i64, 9)
}

fn incoming(
    stream_key: String,
    occurred_at: i64,
    instrument: &str,
    cause: String,
    command_id: Option<String>,
    idempotency_key: String,
    body: Body,
) -> Incoming {
    Incoming {
        event_id: None,
        stream_key,
        seq: None,
        occurred_at,
        ingested_at: None,
        instrument: Some(instrument.to_string()),
        tenancy: Tenancy::default(),
        correlation: Correlation {
            causation_id: Some(cause),
            command_id,
            ..Default::default()
        },
        idempotency_key: Some(idempotency_key),
        body,
    }
}

/// The exec events of one batch: for each order decision `order_submitted` then, on the
/// paper venue (`paper`), `order_acked` (it takes every order; its ack is stamped when the
/// order arrives: the venue model's arrival, else after the base latency), for each cancel `order_cancelled`, then the fills the venue made. (An
/// executor behind the order sink records its own acks and fills.) Decisions
/// about instruments the stream has not named are left out (the venue cannot place them
/// either). Logs and metrics are not exec events.
/// When the paper venue's orders arrive.
#[derive(Debug, Clone, Copy)]
pub struct PaperAcks<'a> {
    /// The base latency (the plain venue's, and cancels').
    pub latency_ns: i64,
    /// Client order id → arrival, for the orders the venue model timed.
    pub arrivals: &'a BTreeMap<u64, i64>,
}

pub fn exec_events(
    ids: &mut ExecIds,
    venue: &str,
    stream: &str,
    decisions: &[Decision],
    fills: &[Trade],
    symbols: &BTreeMap<u32, String>,
    paper: Option<PaperAcks<'_>>,
) -> Vec<Incoming> {
    let mut out = Vec::new();
    let mut index = 0usize;
    let mut last_seq = None;
    for d in decisions {
        if last_seq != Some(d.seq) {
            last_seq = Some(d.seq);
            index = 0;
        }
        let i = index;
        index += 1;
        let cause = format!("{stream}:{}", d.seq);
        let order_id = ids.order_id(d.seq, i);
        match &d.output {
            Output::NewOrder {
                instrument,
                client_order_id,
                side,
                order_type,
                tif,
                price,
                qty,
            } => {
                let Some(sym) = symbols.get(instrument) else {
                    continue;
                };
                let key = format!("exec:{venue}:{sym}");
                if paper.is_some() {
                    // The paper venue's fills name the order they fill (an executor's come
                    // back through the recorder).
                    ids.open.insert(*client_order_id, order_id.clone());
                }
                let price = (*order_type == crate::event::OrderTypeName::Limit).then_some(*price);
                out.push(incoming(
                    key.clone(),
                    d.time_ns,
                    sym,
                    cause.clone(),
                    Some(order_id.clone()),
                    format!("{order_id}:submitted"),
                    Body::OrderSubmitted {
                        client_order_id: *client_order_id,
                        side: *side,
                        order_type: *order_type,
                        tif: *tif,
                        price,
                        qty: *qty,
                    },
                ));
                let Some(paper) = paper else {
                    continue;
                };
                let acked = paper.arrivals.get(client_order_id).copied();
                out.push(incoming(
                    key,
                    acked.unwrap_or(d.time_ns + paper.latency_ns),
                    sym,
                    cause,
                    Some(order_id.clone()),
                    format!("{order_id}:acked"),
                    Body::OrderAcked {
                        client_order_id: *client_order_id,
                        venue_order_id: *client_order_id,
                    },
                ));
            }
            Output::Cancel {
                instrument,
                client_order_id,
            } => {
                let Some(sym) = symbols.get(instrument) else {
                    continue;
                };
                ids.open.remove(client_order_id);
                out.push(incoming(
                    format!("exec:{venue}:{sym}"),
                    d.time_ns + paper.map_or(0, |p| p.latency_ns),
                    sym,
                    cause,
                    Some(order_id.clone()),
                    format!("{order_id}:cancelled"),
                    Body::OrderCancelled {
                        client_order_id: *client_order_id,
                    },
                ));
            }
            Output::Log { .. } | Output::Metric { .. } => {}
        }
    }
    for f in fills {
        // The venue fills an order at once and in full.
        let order_id = ids
            .open
            .remove(&f.client_order_id)
            .unwrap_or_else(|| ids.order_id(f.order_seq, 0));
        out.push(incoming(
            format!("exec:{venue}:{}", f.instrument),
            f.time_ns,
            &f.instrument,
            format!("{stream}:{}", f.seq),
            Some(order_id),
            format!("{}:fill:{}:{}", ids.prefix, f.order_seq, f.client_order_id),
            Body::Fill {
                client_order_id: f.client_order_id,
                // The venue fills an order at once and in full: one trade per order.
                trade_id: f.client_order_id,
                side: if f.side == "buy" {
                    crate::event::SideName::Buy
                } else {
                    crate::event::SideName::Sell
                },
                liquidity: Some(if f.liquidity == "maker" {
                    crate::event::LiquidityName::Maker
                } else {
                    crate::event::LiquidityName::Taker
                }),
                is_final: true,
                price: dec9(f.price),
                qty: dec9(f.qty),
                fee: dec9(f.fee),
            },
        ));
    }
    out
}

/// An audit event of the session (a control action, a finding): `live:<session>`, event type
/// `custom` named `kind`. Its time is the wall clock: it records when an operator acted.
pub fn audit_event(session: &str, kind: &str, data: Value) -> Incoming {
    Incoming {
        event_id: None,
        stream_key: format!("live:{session}"),
        seq: None,
        occurred_at: now_ns(),
        ingested_at: None,
        instrument: None,
        tenancy: Tenancy::default(),
        correlation: Correlation::default(),
        idempotency_key: None,
        body: Body::Custom {
            type_name: kind.to_string(),
            data,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{OrderTypeName, SideName, TifName, instrument_id};

    fn order(seq: u64, instrument: u32, id: u64) -> Decision {
        Decision {
            seq,
            time_ns: seq as i64 * 1000,
            output: Output::NewOrder {
                instrument,
                client_order_id: id,
                side: SideName::Buy,
                order_type: OrderTypeName::Market,
                tif: TifName::Ioc,
                price: Dec::new(0, 0),
                qty: Dec::new(2, 0),
            },
        }
    }

    #[test]
    fn exec_events_carry_ids_derived_from_stream_seq_and_output_index() {
        let sym = instrument_id("BTCUSDT");
        let symbols = BTreeMap::from([(sym, "BTCUSDT".to_string())]);
        let log = Decision {
            seq: 7,
            time_ns: 7000,
            output: Output::Log {
                level: tapedeck_guest::codec::LogLevel::Info,
                message: "x".into(),
            },
        };
        // A log, an order, an order on an instrument the stream never named, an order.
        let decisions = [log, order(7, sym, 1), order(7, 99, 2), order(9, sym, 3)];
        let mut ids = ExecIds::new("s", "md:x:BTCUSDT");
        let fill = Trade {
            seq: 8,
            time_ns: 8000,
            order_seq: 7,
            client_order_id: 1,
            instrument: "BTCUSDT".into(),
            side: "buy".into(),
            price: 60000.5,
            qty: 2.0,
            fee: 0.06,
            liquidity: "taker",
        };
        let ev = exec_events(
            &mut ids,
            "paper",
            "md:x:BTCUSDT",
            &decisions,
            &[fill],
            &symbols,
            Some(PaperAcks {
                latency_ns: 500,
                arrivals: &BTreeMap::new(),
            }),
        );
        let keys: Vec<(&str, &str, &str)> = ev
            .iter()
            .map(|e| {
                (
                    e.body.event_type(),
                    e.correlation.command_id.as_deref().unwrap(),
                    e.idempotency_key.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                (
                    "order_submitted",
                    "live:s:md:x:BTCUSDT:7:1",
                    "live:s:md:x:BTCUSDT:7:1:submitted"
                ),
                (
                    "order_acked",
                    "live:s:md:x:BTCUSDT:7:1",
                    "live:s:md:x:BTCUSDT:7:1:acked"
                ),
                (
                    "order_submitted",
                    "live:s:md:x:BTCUSDT:9:0",
                    "live:s:md:x:BTCUSDT:9:0:submitted"
                ),
                (
                    "order_acked",
                    "live:s:md:x:BTCUSDT:9:0",
                    "live:s:md:x:BTCUSDT:9:0:acked"
                ),
                (
                    "fill",
                    "live:s:md:x:BTCUSDT:7:1",
                    "live:s:md:x:BTCUSDT:fill:7:1"
                ),
            ]
        );
        assert!(ev.iter().all(|e| e.stream_key == "exec:paper:BTCUSDT"));
        // The ack arrives after the venue's latency; the fill names the event it filled at.
        assert_eq!((ev[0].occurred_at, ev[1].occurred_at), (7000, 7500));
        assert_eq!(
            ev[4].correlation.causation_id.as_deref(),
            Some("md:x:BTCUSDT:8")
        );
        let Body::Fill { price, fee, .. } = &ev[4].body else {
            panic!("a fill")
        };
        assert_eq!(
            (price.to_string(), fee.to_string()),
            ("60000.500000000".into(), "0.060000000".into())
        );
    }
}
