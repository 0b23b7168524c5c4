//! The conformance suite's event set: 20 events over three streams (an order book with quotes
//! and trades, a second instrument's quotes, an account's orders, fills, position, balance and
//! a custom event), written out so the cases can state their expectations by hand.
//!
//! Invariants the cases rely on: event `k` of [`events`] occurs at `T0 + k * 100ms`, so
//! event time order is append order; seqs are gapless per stream from 1; the set crosses a
//! UTC month (and day) boundary at `k = 10`, exactly at `2024-02-01T00:00:00Z`, so the file
//! store's day parts and PostgreSQL's month partitions each hold part of two streams; every
//! optional envelope field is set on some event; the account stream's events carry tenancy and
//! correlation, one an explicit idempotency key and one an explicit event id.

use std::collections::BTreeMap;

use tapedeck::event::{Body, Dec, Envelope, LiquidityName, OrderTypeName, SideName, TifName};
use tapedeck::store::StreamInfo;

pub const BTC: &str = "md:conf:BTCUSDT";
pub const ETH: &str = "md:conf:ETHUSDT";
pub const EXEC: &str = "exec:conf:acct-1";
/// Every stream, in key order (the order `streams()` and queries give).
pub const STREAMS: [&str; 3] = [EXEC, BTC, ETH];

/// 2024-01-31T23:59:59Z: event 10 falls on the first nanosecond of February.
pub const T0: i64 = 1_706_745_599_000_000_000;
const STEP: i64 = 100_000_000;
/// The explicit event id of the custom event (any id a writer gave must be kept).
pub const GIVEN_ID: &str = "01HQ7C0NF0RMANCE0000000000";

/// The time of event `k`.
pub fn at(k: i64) -> i64 {
    T0 + k * STEP
}

fn d(s: &str) -> Dec {
    s.parse().expect("decimal")
}

fn quote(bid: &str, ask: &str, update_id: Option<u64>) -> Body {
    Body::Quote {
        bid_px: d(bid),
        bid_qty: d("1.500"),
        ask_px: d(ask),
        ask_qty: d("0.25"),
        update_id,
    }
}

fn fill(coid: u64, trade_id: u64, side: SideName, px: &str, qty: &str, fin: bool) -> Body {
    Body::Fill {
        client_order_id: coid,
        trade_id,
        side,
        liquidity: Some(if fin {
            LiquidityName::Taker
        } else {
            LiquidityName::Maker
        }),
        is_final: fin,
        price: d(px),
        qty: d(qty),
        fee: d("0.01"),
    }
}

/// The event set, in append order (event time order across streams).
pub fn events() -> Vec<Envelope> {
    let bodies: Vec<(&str, Option<&str>, Body)> = vec![
        (
            BTC,
            Some("BTCUSDT"),
            Body::BookSnapshot {
                update_id: 100,
                bids: vec![[d("65000.10"), d("1.500")], [d("64999.00"), d("2.000")]],
                asks: vec![[d("65000.20"), d("0.500")], [d("65001.00"), d("3.000")]],
            },
        ),
        (ETH, Some("ETHUSDT"), quote("3400.10", "3400.20", None)),
        (BTC, Some("BTCUSDT"), quote("65000.10", "65000.20", None)),
        (
            EXEC,
            Some("BTCUSDT"),
            Body::OrderSubmitted {
                client_order_id: 7,
                side: SideName::Buy,
                order_type: OrderTypeName::Limit,
                tif: TifName::Gtc,
                price: Some(d("65000.20")),
                qty: d("0.30"),
            },
        ),
        (
            EXEC,
            Some("BTCUSDT"),
            Body::OrderAcked {
                client_order_id: 7,
                venue_order_id: 9001,
            },
        ),
        (
            BTC,
            Some("BTCUSDT"),
            Body::BookDelta {
                first_update_id: 101,
                final_update_id: 102,
                prev_final_update_id: 100,
                bids: vec![[d("65000.10"), d("0.000")]],
                asks: vec![[d("65000.15"), d("0.250")]],
            },
        ),
        (
            BTC,
            Some("BTCUSDT"),
            Body::Trade {
                price: d("65000.20"),
                qty: d("0.10"),
                trade_id: 555,
                aggressor: Some(SideName::Buy),
            },
        ),
        (
            EXEC,
            Some("BTCUSDT"),
            fill(7, 555, SideName::Buy, "65000.20", "0.10", false),
        ),
        (ETH, Some("ETHUSDT"), quote("3400.00", "3400.30", Some(77))),
        (
            EXEC,
            Some("BTCUSDT"),
            fill(7, 556, SideName::Buy, "65000.20", "0.20", true),
        ),
        (
            BTC,
            Some("BTCUSDT"),
            quote("64999.00", "65000.15", Some(102)),
        ),
        (
            ETH,
            Some("ETHUSDT"),
            Body::Trade {
                price: d("3400.30"),
                qty: d("1.25"),
                trade_id: 42,
                aggressor: None,
            },
        ),
        (
            EXEC,
            Some("BTCUSDT"),
            Body::OrderSubmitted {
                client_order_id: 8,
                side: SideName::Sell,
                order_type: OrderTypeName::Market,
                tif: TifName::Ioc,
                price: None,
                qty: d("0.10"),
            },
        ),
        (
            EXEC,
            Some("BTCUSDT"),
            fill(8, 557, SideName::Sell, "65010.00", "0.10", true),
        ),
        (
            BTC,
            Some("BTCUSDT"),
            Body::BookDelta {
                first_update_id: 103,
                final_update_id: 103,
                prev_final_update_id: 102,
                bids: vec![[d("64999.50"), d("0.750")]],
                asks: vec![],
            },
        ),
        (
            EXEC,
            None,
            Body::Custom {
                type_name: "note".into(),
                data: serde_json::json!({"tags": ["x", "y"], "n": 3, "nested": {"k": "v"}}),
            },
        ),
        (
            EXEC,
            Some("BTCUSDT"),
            Body::Position {
                qty: d("0.20"),
                avg_price: d("65000.20"),
                realized_pnl: d("0.98"),
            },
        ),
        (ETH, Some("ETHUSDT"), quote("3401.00", "3401.10", None)),
        (
            EXEC,
            Some("USDT"),
            Body::Balance {
                total: d("100000.00"),
                free: d("93500.00"),
                locked: d("0"),
            },
        ),
        (
            BTC,
            Some("BTCUSDT"),
            quote("64999.50", "65000.15", Some(103)),
        ),
    ];
    let mut seqs: BTreeMap<&str, u64> = BTreeMap::new();
    bodies
        .into_iter()
        .enumerate()
        .map(|(k, (stream, instrument, body))| {
            let seq = seqs.entry(stream).or_default();
            *seq += 1;
            let mut e = Envelope::new(stream, *seq, at(k as i64), instrument, body);
            e.ingested_at = e.occurred_at + 5_000_000;
            if stream == EXEC {
                account_fields(&mut e, k);
            }
            e
        })
        .collect()
}

/// Tenancy and correlation on the account stream; one explicit key, one explicit id, one
/// event recorded late (in the next month).
fn account_fields(e: &mut Envelope, k: usize) {
    e.tenancy.tenant_id = Some("acme".into());
    e.tenancy.owner_id = Some("desk-1".into());
    e.tenancy.workspace_id = Some("ws-1".into());
    e.tenancy.project_id = Some("conformance".into());
    let coid = match &e.body {
        Body::OrderSubmitted {
            client_order_id, ..
        }
        | Body::OrderAcked {
            client_order_id, ..
        }
        | Body::Fill {
            client_order_id, ..
        } => Some(*client_order_id),
        _ => None,
    };
    if let Some(coid) = coid {
        e.correlation.trace_id = Some(format!("trace-{coid}"));
        e.correlation.command_id = Some(format!("cmd-{coid}"));
        e.correlation.workflow_id = Some("wf-1".into());
        if e.seq > 1 {
            e.correlation.causation_id = Some(format!("cause-{}", e.seq - 1));
        }
    }
    match k {
        // The second fill is recorded late: it occurred in January, is ingested in February.
        9 => e.ingested_at = at(15),
        13 => e.idempotency_key = Some("conformance-fill-557".into()),
        15 => e.event_id = GIVEN_ID.into(),
        _ => {}
    }
}

/// The events of `stream`, by seq.
pub fn of(stream: &str) -> Vec<Envelope> {
    events()
        .into_iter()
        .filter(|e| e.stream_key == stream)
        .collect()
}

/// The event of `stream` at `seq`.
pub fn event(stream: &str, seq: u64) -> Envelope {
    of(stream)
        .into_iter()
        .find(|e| e.seq == seq)
        .expect("in the set")
}

/// What `streams()` must say about a store holding `events`: keys, seq ranges, event time
/// bounds and counts by type (worked out here, not by the library).
pub fn stream_infos(events: &[Envelope]) -> Vec<StreamInfo> {
    let mut out: BTreeMap<String, StreamInfo> = BTreeMap::new();
    for e in events {
        let info = out
            .entry(e.stream_key.clone())
            .or_insert_with(|| StreamInfo {
                key: e.stream_key.clone(),
                first_seq: u64::MAX,
                last_seq: 0,
                first_time: i64::MAX,
                last_time: i64::MIN,
                counts: BTreeMap::new(),
            });
        info.first_seq = info.first_seq.min(e.seq);
        info.last_seq = info.last_seq.max(e.seq);
        info.first_time = info.first_time.min(e.occurred_at);
        info.last_time = info.last_time.max(e.occurred_at);
        *info
            .counts
            .entry(e.body.event_type().to_string())
            .or_default() += 1;
    }
    out.into_values().collect()
}

/// One stream's summary spelled out: key, last seq, first and last event time, counts by type.
pub type Spelled = (&'static str, u64, i64, i64, Vec<(&'static str, u64)>);

/// The event set's per-stream summaries, spelled out (a check on [`stream_infos`] itself).
pub fn expected_streams() -> Vec<Spelled> {
    vec![
        (
            EXEC,
            9,
            at(3),
            at(18),
            vec![
                ("balance", 1),
                ("custom", 1),
                ("fill", 3),
                ("order_acked", 1),
                ("order_submitted", 2),
                ("position", 1),
            ],
        ),
        (
            BTC,
            7,
            at(0),
            at(19),
            vec![
                ("book_delta", 2),
                ("book_snapshot", 1),
                ("quote", 3),
                ("trade", 1),
            ],
        ),
        (ETH, 4, at(1), at(17), vec![("quote", 3), ("trade", 1)]),
    ]
}
