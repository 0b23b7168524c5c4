//! `tapedeck reconcile` on a generated live session: ema-cross's orders on the fixture's
//! market data, executed by the venue, written as an exec stream whose acks come 1–5 ms after
//! the orders and whose fills are 0.05 worse in price and 1 ms later than the venue's. The
//! reconciliation must pair every fill and recover the injected slippage, delay and latency;
//! `--fit` must fit the order latency recorded.

use std::collections::BTreeMap;

use tapedeck::event::{Body, Envelope, LiquidityName, OrderTypeName, SideName, TifName};
use tapedeck::reconcile::simulate_window;
use tapedeck::replay::Plugin;
use tapedeck::store::{EventSink, EventSource, FileStore, FileStoreOptions, SeqRange};
use tapedeck::venue::VenueConfig;
use tapedeck_test_guests as guests;

use super::{fixtures, load, rt, tapedeck, tmp};

const SLIP: f64 = 0.05;
const DELAY: i64 = 1_000_000;

fn ack_latency(coid: u64) -> i64 {
    1_000_000 * (1 + (coid % 5) as i64)
}

#[test]
fn reconcile_recovers_injected_slippage_and_latency() {
    let dir = tmp("session");
    let fixtures = FileStore::open(fixtures()).unwrap();
    let key = "md:sim:SYM1";
    let mut md = Vec::new();
    fixtures
        .read(key, SeqRange::ALL, &mut |e| {
            md.push(e);
            Ok(())
        })
        .unwrap();
    let time_of: BTreeMap<u64, i64> = md.iter().map(|e| (e.seq, e.occurred_at)).collect();
    let mut store = FileStore::create(dir.join("store"), FileStoreOptions::default()).unwrap();
    store.append(&md).unwrap();
    // The venue's fills (plain venue, the command's defaults).
    let plugin = Plugin::new(load(guests::EMA_CROSS), "");
    let (sim, _) = simulate_window(
        rt(),
        &store,
        &plugin,
        &VenueConfig::default(),
        key,
        (i64::MIN, i64::MAX),
    )
    .unwrap();
    assert!(sim.len() >= 5, "{} orders filled", sim.len());
    // The live session: submitted, acked, filled (worse and later).
    let mut exec: Vec<(i64, Body)> = Vec::new();
    let mut qty_total = 0.0;
    for (coid, (side, fills)) in &sim {
        // The order went out at the event that caused it: its seq is the id's high bits.
        let sent = time_of[&(coid >> 8)];
        let qty: f64 = fills.iter().map(|f| f.2).sum();
        qty_total += qty;
        exec.push((
            sent,
            Body::OrderSubmitted {
                client_order_id: *coid,
                side: *side,
                order_type: OrderTypeName::Market,
                tif: TifName::Gtc,
                price: None,
                qty: format!("{qty}").parse().unwrap(),
            },
        ));
        exec.push((
            sent + ack_latency(*coid),
            Body::OrderAcked {
                client_order_id: *coid,
                venue_order_id: *coid,
            },
        ));
        let sign = if *side == SideName::Buy { 1.0 } else { -1.0 };
        for (i, f) in fills.iter().enumerate() {
            exec.push((
                f.0 + DELAY,
                Body::Fill {
                    client_order_id: *coid,
                    trade_id: i as u64,
                    side: *side,
                    liquidity: Some(if f.4 {
                        LiquidityName::Maker
                    } else {
                        LiquidityName::Taker
                    }),
                    is_final: i + 1 == fills.len(),
                    price: format!("{:.6}", f.1 + sign * SLIP).parse().unwrap(),
                    qty: format!("{}", f.2).parse().unwrap(),
                    fee: format!("{:.9}", f.3).parse().unwrap(),
                },
            ));
        }
    }
    exec.sort_by_key(|e| e.0);
    let events: Vec<Envelope> = exec
        .into_iter()
        .enumerate()
        .map(|(i, (t, body))| Envelope::new("exec:sim:SYM1", i as u64 + 1, t, Some("SYM1"), body))
        .collect();
    store.append(&events).unwrap();
    drop(store);

    let out = dir.join("out");
    let o = tapedeck(&[
        "reconcile",
        "--store",
        dir.join("store").to_str().unwrap(),
        "--live",
        "exec:*",
        "--strategy",
        guests::EMA_CROSS,
        "--out",
        out.to_str().unwrap(),
        "--fit",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("reconcile.json")).unwrap()).unwrap();
    assert_eq!(r["trades"].as_array().unwrap().len(), sim.len());
    assert_eq!(r["pnl_gap"]["live_only_orders"], 0);
    assert_eq!(r["pnl_gap"]["sim_only_orders"], 0);
    let s = &r["slippage"];
    for q in ["p5", "p50", "p95", "mean"] {
        let v = s[q].as_f64().unwrap();
        assert!((v - SLIP).abs() < 1e-6, "slippage {q} {v}");
    }
    assert_eq!(
        r["fill_time_diff_ns"]["p50"].as_f64().unwrap(),
        DELAY as f64
    );
    let lat = &r["order_latency_ns"];
    assert_eq!(lat["p5"].as_f64().unwrap(), 1_000_000.0);
    assert_eq!(lat["p95"].as_f64().unwrap(), 5_000_000.0);
    // The gap: every unit traded cost SLIP.
    let gap = r["pnl_gap"]["latency"].as_f64().unwrap() + r["pnl_gap"]["queue"].as_f64().unwrap();
    assert!(
        (gap + SLIP * qty_total).abs() < 1e-6,
        "{gap} vs {}",
        -SLIP * qty_total
    );
    assert!((r["pnl_gap"]["fees"].as_f64().unwrap()).abs() < 1e-6);
    // --fit: the order latency recorded, as a distribution.
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("venue.json")).unwrap()).unwrap();
    let q = v["order_latency"]["quantiles_ns"].as_array().unwrap();
    assert_eq!(q.len(), 101);
    assert_eq!(q[0], 1_000_000);
    assert_eq!(q[100], 5_000_000);
    std::fs::remove_dir_all(&dir).unwrap();
}
