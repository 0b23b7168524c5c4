//! The seeded fixture generator: a small store with market data and order lifecycles for
//! several instruments, and stored snapshots of the repo's projectors (computed natively, from
//! the same guest sources, so a Wasm replay has an independent reference to agree with).
//!
//! Per instrument `SYMi` two streams:
//! - `md:sim:SYMi`: a book snapshot, then book deltas, quotes (the top of the book) and trades;
//! - `exec:sim:SYMi`: orders submitted, acked or rejected (with risk decisions), filled in
//!   parts or cancelled, plus balances, positions, funding, guardrail transitions and a
//!   custom event now and then.
//!
//! Same seed, same bytes.

use std::collections::BTreeMap;

use serde::Serialize;
use tapedeck_guest::codec::EventBatchWriter;
use tapedeck_guest::driver::ProjectorDriver;

use crate::synth::SplitMix64;
use tapedeck::error::Result;
use tapedeck::event::StreamEncoder;
use tapedeck::event::{
    Body, Dec, Envelope, LiquidityName, OrderTypeName, SideName, TifName, VerdictName,
};
use tapedeck::store::{EventSink, StoredSnapshot};

#[derive(Debug, Clone, Serialize)]
pub struct FixtureSpec {
    pub seed: u64,
    pub instruments: u32,
    pub events_per_stream: u64,
    /// A stored snapshot of every projector after every this many events of a stream.
    pub snapshot_every: u64,
}

impl Default for FixtureSpec {
    fn default() -> Self {
        FixtureSpec {
            seed: 7,
            instruments: 3,
            events_per_stream: 600,
            snapshot_every: 200,
        }
    }
}

/// 2024-01-02T00:00:00Z
const T0: i64 = 1_704_153_600_000_000_000;
const PX: u8 = 2;
const QTY: u8 = 3;

fn dec(m: i64, s: u8) -> Dec {
    Dec::new(m, s)
}

/// Generates the fixture streams and snapshots into `sink`.
pub fn generate(sink: &mut dyn EventSink, spec: &FixtureSpec) -> Result<()> {
    let mut rng = SplitMix64::new(spec.seed);
    for i in 1..=spec.instruments {
        let symbol = format!("SYM{i}");
        let md = market_data(&mut rng, &symbol, i, spec.events_per_stream);
        let exec = executions(&mut rng, &symbol, i, spec.events_per_stream);
        for events in [md, exec] {
            sink.append(&events)?;
            for s in snapshots(&events, spec.snapshot_every) {
                sink.put_snapshot(&s)?;
            }
        }
    }
    Ok(())
}

fn market_data(rng: &mut SplitMix64, symbol: &str, i: u32, n: u64) -> Vec<Envelope> {
    let key = format!("md:sim:{symbol}");
    let mut bids: BTreeMap<i64, i64> = BTreeMap::new();
    let mut asks: BTreeMap<i64, i64> = BTreeMap::new();
    let mid = 10_000 * i as i64 + rng.below(1_000) as i64;
    for k in 1..=10 {
        bids.insert(mid - k, 1 + rng.below(5_000) as i64);
        asks.insert(mid + k, 1 + rng.below(5_000) as i64);
    }
    let pairs = |m: &BTreeMap<i64, i64>, rev: bool| -> Vec<[Dec; 2]> {
        let v: Vec<[Dec; 2]> = m.iter().map(|(p, q)| [dec(*p, PX), dec(*q, QTY)]).collect();
        if rev {
            v.into_iter().rev().collect()
        } else {
            v
        }
    };
    let mut out = Vec::with_capacity(n as usize);
    let mut update_id = 1_000 * i as u64;
    let t = |seq: u64| T0 + i as i64 * 1_000_000 + seq as i64 * 100_000_000;
    out.push(Envelope::new(
        &key,
        1,
        t(1),
        Some(symbol),
        Body::BookSnapshot {
            update_id,
            bids: pairs(&bids, true),
            asks: pairs(&asks, false),
        },
    ));
    for seq in 2..=n {
        let r = rng.below(10);
        let body = if r < 5 {
            // A delta: change or remove a level or two on one side, never crossing.
            let first = update_id + 1;
            let (mut db, mut da) = (Vec::new(), Vec::new());
            for _ in 0..1 + rng.below(2) {
                let buy = rng.below(2) == 0;
                let (best_bid, best_ask) = (
                    *bids.keys().next_back().unwrap(),
                    *asks.keys().next().unwrap(),
                );
                let qty = if rng.below(4) == 0 {
                    0
                } else {
                    1 + rng.below(5_000) as i64
                };
                if buy {
                    let p = (best_bid - rng.below(5) as i64).min(best_ask - 1);
                    if qty == 0 && bids.len() <= 3 {
                        continue;
                    }
                    if qty == 0 {
                        bids.remove(&p)
                    } else {
                        bids.insert(p, qty)
                    };
                    db.push([dec(p, PX), dec(qty, QTY)]);
                } else {
                    let p = (best_ask + rng.below(5) as i64).max(best_bid + 1);
                    if qty == 0 && asks.len() <= 3 {
                        continue;
                    }
                    if qty == 0 {
                        asks.remove(&p)
                    } else {
                        asks.insert(p, qty)
                    };
                    da.push([dec(p, PX), dec(qty, QTY)]);
                }
                update_id += 1;
            }
            update_id = update_id.max(first);
            Body::BookDelta {
                first_update_id: first,
                final_update_id: update_id,
                prev_final_update_id: first - 1,
                bids: db,
                asks: da,
            }
        } else if r < 8 {
            let ((bp, bq), (ap, aq)) = (
                bids.iter().next_back().unwrap(),
                asks.iter().next().unwrap(),
            );
            Body::Quote {
                bid_px: dec(*bp, PX),
                bid_qty: dec(*bq, QTY),
                ask_px: dec(*ap, PX),
                ask_qty: dec(*aq, QTY),
                update_id: Some(update_id),
            }
        } else {
            let buy = rng.below(2) == 0;
            let px = if buy {
                *asks.keys().next().unwrap()
            } else {
                *bids.keys().next_back().unwrap()
            };
            Body::Trade {
                price: dec(px, PX),
                qty: dec(1 + rng.below(2_000) as i64, QTY),
                trade_id: seq,
                aggressor: Some(if buy { SideName::Buy } else { SideName::Sell }),
            }
        };
        out.push(Envelope::new(&key, seq, t(seq), Some(symbol), body));
    }
    out
}

fn executions(rng: &mut SplitMix64, symbol: &str, i: u32, n: u64) -> Vec<Envelope> {
    let key = format!("exec:sim:{symbol}");
    let t = |seq: u64| T0 + i as i64 * 1_000_000 + seq as i64 * 250_000_000;
    let mut out: Vec<Envelope> = Vec::with_capacity(n as usize);
    let mut open: Vec<(u64, i64, i64, SideName)> = Vec::new(); // (id, qty, filled, side)
    let mut next_id = 1u64;
    let mut position = 0i64;
    let mut cash = 1_000_000_000i64; // at scale 2
    let price = 10_000 * i as i64;
    let mut mode = "normal";
    while (out.len() as u64) < n {
        let seq = out.len() as u64 + 1;
        let push = |out: &mut Vec<Envelope>, body: Body, instrument: &str| {
            let s = out.len() as u64 + 1;
            out.push(Envelope::new(&key, s, t(s), Some(instrument), body));
        };
        let r = rng.below(20);
        if r < 6 || open.is_empty() {
            let id = next_id;
            next_id += 1;
            let side = if rng.below(2) == 0 {
                SideName::Buy
            } else {
                SideName::Sell
            };
            let qty = 1_000 * (1 + rng.below(5) as i64);
            let limit = rng.below(3) != 0;
            push(
                &mut out,
                Body::OrderSubmitted {
                    client_order_id: id,
                    side,
                    order_type: if limit {
                        OrderTypeName::Limit
                    } else {
                        OrderTypeName::Market
                    },
                    tif: if limit { TifName::Gtc } else { TifName::Ioc },
                    price: limit.then(|| dec(price + rng.below(100) as i64 - 50, PX)),
                    qty: dec(qty, QTY),
                },
                symbol,
            );
            if rng.below(10) == 0 {
                push(
                    &mut out,
                    Body::RiskDecision {
                        client_order_id: id,
                        decision: VerdictName::Deny,
                        reason_code: "max_position".into(),
                    },
                    symbol,
                );
                push(
                    &mut out,
                    Body::OrderRejected {
                        client_order_id: id,
                        reason: "risk: max_position".into(),
                    },
                    symbol,
                );
            } else {
                push(
                    &mut out,
                    Body::RiskDecision {
                        client_order_id: id,
                        decision: VerdictName::Allow,
                        reason_code: "ok".into(),
                    },
                    symbol,
                );
                push(
                    &mut out,
                    Body::OrderAcked {
                        client_order_id: id,
                        venue_order_id: 900_000 + id,
                    },
                    symbol,
                );
                open.push((id, qty, 0, side));
            }
        } else if r < 15 {
            let k = rng.below(open.len() as u64) as usize;
            let (id, qty, filled, side) = open[k];
            let part = (qty - filled).min(1_000 * (1 + rng.below(3) as i64));
            let fill_px = price + rng.below(100) as i64 - 50;
            let is_final = filled + part == qty;
            let fee = fill_px * part / 1_000 / 1_000; // 0.1% at price scale
            position += if side == SideName::Buy { part } else { -part };
            cash -= if side == SideName::Buy {
                fill_px * part / 1_000
            } else {
                -(fill_px * part / 1_000)
            } + fee;
            push(
                &mut out,
                Body::Fill {
                    client_order_id: id,
                    trade_id: 50_000 + seq,
                    side,
                    liquidity: Some(if rng.below(2) == 0 {
                        LiquidityName::Maker
                    } else {
                        LiquidityName::Taker
                    }),
                    is_final,
                    price: dec(fill_px, PX),
                    qty: dec(part, QTY),
                    fee: dec(fee, PX),
                },
                symbol,
            );
            if is_final {
                open.remove(k);
            } else {
                open[k].2 += part;
            }
        } else if r < 17 {
            let k = rng.below(open.len() as u64) as usize;
            push(
                &mut out,
                Body::OrderCancelled {
                    client_order_id: open.remove(k).0,
                },
                symbol,
            );
        } else if r == 17 {
            push(
                &mut out,
                Body::Balance {
                    total: dec(cash, PX),
                    free: dec(cash * 9 / 10, PX),
                    locked: dec(cash - cash * 9 / 10, PX),
                },
                "USD",
            );
            push(
                &mut out,
                Body::Position {
                    qty: dec(position, QTY),
                    avg_price: dec(price, PX),
                    realized_pnl: dec(0, PX),
                },
                symbol,
            );
        } else if r == 18 {
            push(
                &mut out,
                Body::Funding {
                    rate: dec(1 + rng.below(20) as i64, 6),
                    mark_price: dec(price, PX),
                    payment: dec(-(rng.below(500) as i64), PX),
                },
                symbol,
            );
        } else {
            let next = if mode == "normal" {
                "reduce_only"
            } else {
                "normal"
            };
            push(
                &mut out,
                Body::GuardrailTransition {
                    prev_mode: mode.into(),
                    next_mode: next.into(),
                    trigger_metric: "drawdown_bps".into(),
                    value: dec(rng.below(300) as i64, 0),
                    reason: format!("threshold crossed at seq {seq}"),
                },
                symbol,
            );
            mode = next;
            push(
                &mut out,
                Body::Custom {
                    type_name: "heartbeat".into(),
                    data: serde_json::json!({ "seq": seq, "open_orders": open.len() }),
                },
                symbol,
            );
        }
    }
    out.truncate(n as usize);
    out
}

/// Runs the repo's projectors natively over `events` and snapshots them every `every` events.
fn snapshots(events: &[Envelope], every: u64) -> Vec<StoredSnapshot> {
    let mut book = ProjectorDriver::<book::Book>::init("").expect("default config");
    let mut positions = ProjectorDriver::<positions::Positions>::init("").expect("default config");
    let mut orders = ProjectorDriver::<orders::Orders>::init("").expect("default config");
    // The stream's instrument table, as replay hands it over.
    let symbols: std::collections::BTreeMap<u32, String> = events
        .iter()
        .filter_map(|e| e.instrument.clone())
        .map(|s| (tapedeck::event::instrument_id(&s), s))
        .collect();
    let table = tapedeck::event::instrument_table(&symbols);
    book.set_instruments(table.clone());
    positions.set_instruments(table.clone());
    orders.set_instruments(table);
    let mut enc = StreamEncoder::new(1);
    let mut out = Vec::new();
    for chunk in events.chunks(every.max(1) as usize) {
        let mut w = EventBatchWriter::new(Vec::new());
        for e in chunk {
            enc.encode(e, &mut w).expect("generated events encode");
        }
        let batch = w.finish();
        book.on_events(&batch);
        positions.on_events(&batch);
        orders.on_events(&batch);
        let last = chunk.last().unwrap();
        if chunk.len() as u64 != every {
            break;
        }
        let snap = |name: &str, state: Vec<u8>, guest: Vec<u8>| {
            let state: serde_json::Value = serde_json::from_slice(&state).unwrap();
            let guest: serde_json::Value = serde_json::from_slice(&guest).unwrap();
            StoredSnapshot {
                stream: last.stream_key.clone(),
                seq: last.seq,
                projector: name.into(),
                guest_snapshot: (guest != state).then_some(guest),
                state,
            }
        };
        out.push(snap("book", book.state(), book.snapshot()));
        out.push(snap("positions", positions.state(), positions.snapshot()));
        out.push(snap("orders", orders.state(), orders.snapshot()));
    }
    out
}
