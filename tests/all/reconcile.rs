//! `tapedeck reconcile` on generated live sessions, made from the venue's own runs:
//! - ema-cross's market orders on the fixture's market data, executed by the plain venue,
//!   written as an exec stream whose acks come 1–5 ms after the orders and whose fills are
//!   0.05 worse in price and 1 ms later than the venue's. The reconciliation must pair every
//!   fill and recover the injected slippage, delay and latency; `--fit` must fit the order
//!   latency recorded.
//! - ema-cross joining the touch with limit orders (a cancel before each new one), executed
//!   by the venue model with a 20 ms order latency: reconciled with that model there is no
//!   gap at all; with no latency the gap is the difference of the two runs' PnLs, computed
//!   here from their fills, and its parts add up to it.

use tapedeck::event::{Body, Envelope, LiquidityName, OrderTypeName, SideName, TifName};
use tapedeck::reconcile::{SimWindow, simulate_window};
use tapedeck::replay::Plugin;
use tapedeck::store::{EventSink, EventSource, FileStore, FileStoreOptions, SeqRange};
use tapedeck::venue::{VenueConfig, VenueModel};
use tapedeck_test_guests as guests;

use super::{fixtures, load, rt, tapedeck, tmp};

const SLIP: f64 = 0.05;
const DELAY: i64 = 1_000_000;
const KEY: &str = "md:sim:SYM1";

fn ack_latency(coid: u64) -> i64 {
    1_000_000 * (1 + (coid % 5) as i64)
}

/// A new store at `dir/store` holding the fixture's market data of SYM1.
fn market_store(dir: &std::path::Path) -> FileStore {
    let fixtures = FileStore::open(fixtures()).unwrap();
    let mut md = Vec::new();
    fixtures
        .read(KEY, SeqRange::ALL, &mut |e| {
            md.push(e);
            Ok(())
        })
        .unwrap();
    let mut store = FileStore::create(dir.join("store"), FileStoreOptions::default()).unwrap();
    store.append(&md).unwrap();
    store
}

/// The replay of ema-cross (with `config`) through `venue` over the whole of SYM1.
fn run(store: &FileStore, config: &str, venue: &VenueConfig) -> SimWindow {
    let plugin = Plugin::new(load(guests::EMA_CROSS), config);
    simulate_window(rt(), store, &plugin, venue, KEY, (i64::MIN, i64::MAX)).unwrap()
}

/// A live session made from a run: each order submitted when it was sent, acked `ack(id)`
/// later, its fills `delay` later and `slip` worse in price.
fn exec_stream(sim: &SimWindow, ack: impl Fn(u64) -> i64, slip: f64, delay: i64) -> Vec<Envelope> {
    let mut exec: Vec<(i64, Body)> = Vec::new();
    for (coid, (sent, limit)) in &sim.orders {
        let fills = sim.fills.get(coid);
        let qty: f64 = fills.map_or(1.0, |f| f.1.iter().map(|f| f.2).sum());
        exec.push((
            *sent,
            Body::OrderSubmitted {
                client_order_id: *coid,
                side: fills.map_or(SideName::Buy, |f| f.0),
                order_type: if *limit {
                    OrderTypeName::Limit
                } else {
                    OrderTypeName::Market
                },
                tif: TifName::Gtc,
                price: None,
                qty: format!("{qty}").parse().unwrap(),
            },
        ));
        exec.push((
            sent + ack(*coid),
            Body::OrderAcked {
                client_order_id: *coid,
                venue_order_id: *coid,
            },
        ));
        let Some((side, fills)) = fills else {
            continue;
        };
        let sign = if *side == SideName::Buy { 1.0 } else { -1.0 };
        for (i, f) in fills.iter().enumerate() {
            exec.push((
                f.0 + delay,
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
                    price: format!("{:.6}", f.1 + sign * slip).parse().unwrap(),
                    qty: format!("{}", f.2).parse().unwrap(),
                    fee: format!("{:.9}", f.3).parse().unwrap(),
                },
            ));
        }
    }
    exec.sort_by_key(|e| e.0);
    exec.into_iter()
        .enumerate()
        .map(|(i, (t, body))| Envelope::new("exec:sim:SYM1", i as u64 + 1, t, Some("SYM1"), body))
        .collect()
}

/// `tapedeck reconcile` of the store's exec streams with ema-cross; reconcile.json.
fn reconcile(dir: &std::path::Path, out: &str, extra: &[&str]) -> serde_json::Value {
    let out = dir.join(out);
    let store = dir.join("store");
    let mut args = vec![
        "reconcile",
        "--store",
        store.to_str().unwrap(),
        "--live",
        "exec:*",
        "--strategy",
        guests::EMA_CROSS,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = tapedeck(&args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&std::fs::read(out.join("reconcile.json")).unwrap()).unwrap()
}

#[test]
fn reconcile_recovers_injected_slippage_and_latency() {
    let dir = tmp("session");
    let mut store = market_store(&dir);
    // The venue's fills (plain venue, the command's defaults).
    let sim = run(&store, "", &VenueConfig::default());
    assert!(sim.fills.len() >= 5, "{} orders filled", sim.fills.len());
    let qty_total: f64 = sim.fills.values().flat_map(|f| &f.1).map(|f| f.2).sum();
    store
        .append(&exec_stream(&sim, ack_latency, SLIP, DELAY))
        .unwrap();
    drop(store);

    let r = reconcile(&dir, "out", &["--fit"]);
    let out = dir.join("out");
    let sim = &sim.fills;
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
    let g = &r["pnl_gap"];
    assert!((g["fees"].as_f64().unwrap()).abs() < 1e-6);
    assert!(
        (g["queue"].as_f64().unwrap()).abs() < 1e-9,
        "market orders only: {g}"
    );
    // Live less simulated PnL, marked alike: the slippage paid.
    let total = g["total"].as_f64().unwrap();
    assert!((total + SLIP * qty_total).abs() < 1e-6, "{g}");
    assert!((g["live"].as_f64().unwrap() - g["sim"].as_f64().unwrap() - total).abs() < 1e-9);
    // --fit: the order latency recorded, as a distribution.
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("venue.json")).unwrap()).unwrap();
    let q = v["order_latency"]["quantiles_ns"].as_array().unwrap();
    assert_eq!(q.len(), 101);
    assert_eq!(q[0], 1_000_000);
    assert_eq!(q[100], 5_000_000);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// PnL of one side's fills over the window, marked at `mark`: Σ sign × qty × (mark − price)
/// − fee (the report's definition, computed here from the runs' fills).
fn pnl(fills: &tapedeck::reconcile::FillsByOrder, mark: f64, slip: f64) -> f64 {
    let mut p = 0.0;
    for (side, fills) in fills.values() {
        let sign = if *side == SideName::Buy { 1.0 } else { -1.0 };
        for f in fills {
            p += sign * f.2 * (mark - (f.1 + sign * slip)) - f.3;
        }
    }
    p
}

#[test]
fn reconcile_splits_the_gap_of_a_venue_model_session() {
    let dir = tmp("model-session");
    let mut store = market_store(&dir);
    // The session: limit orders joining the touch, the venue model with a 20 ms order latency
    // and the risk-averse queue.
    let join = r#"{"join": true, "fast": 0.6, "slow": 0.2, "warmup": 4}"#;
    let model =
        VenueModel::from_json(r#"{"order_latency": {"model": "constant", "ns": 20000000}}"#)
            .unwrap();
    let live_cfg = VenueConfig {
        model: Some(model.clone()),
        ..VenueConfig::default()
    };
    let live = run(&store, join, &live_cfg);
    let limits = live.orders.values().filter(|o| o.1).count();
    assert!(
        limits >= 5 && live.fills.len() >= 5,
        "{limits} limit orders, {} filled",
        live.fills.len()
    );
    let exec = exec_stream(&live, |_| 20_000_000, 0.0, 0);
    let end = exec.last().unwrap().occurred_at;
    store.append(&exec).unwrap();
    drop(store);
    let cfg = dir.join("venue.json");
    std::fs::write(&cfg, serde_json::to_vec(&model).unwrap()).unwrap();

    // Reconciled with the model it ran: every fill paired, no gap.
    let r = reconcile(
        &dir,
        "same",
        &["--config", join, "--venue", cfg.to_str().unwrap()],
    );
    let g = &r["pnl_gap"];
    assert_eq!(
        r["trades"].as_array().unwrap().len(),
        live.fills.len(),
        "{g}"
    );
    assert_eq!(
        (
            g["live_only_orders"].as_u64(),
            g["sim_only_orders"].as_u64()
        ),
        (Some(0), Some(0))
    );
    for part in ["total", "fees", "latency", "queue"] {
        assert!(g[part].as_f64().unwrap().abs() < 1e-9, "{part}: {g}");
    }
    assert_eq!(r["live_fill_rate"], r["sim_fill_rate"]);

    // With no latency: the replay's own fills, and a gap that is the difference of the PnLs.
    let r = reconcile(&dir, "none", &["--config", join]);
    let g = &r["pnl_gap"];
    let store = FileStore::open(dir.join("store")).unwrap();
    let zero = run(&store, join, &VenueConfig::default());
    let in_window = |w: &SimWindow| -> tapedeck::reconcile::FillsByOrder {
        w.fills
            .iter()
            .filter_map(|(id, (side, f))| {
                let f: Vec<_> = f.iter().filter(|f| f.0 <= end).copied().collect();
                (!f.is_empty()).then_some((*id, (*side, f)))
            })
            .collect()
    };
    let mark = r["marks"]["exec:sim:SYM1"].as_f64().unwrap();
    let (live_pnl, sim_pnl) = (
        pnl(&live.fills, mark, 0.0),
        pnl(&in_window(&zero), mark, 0.0),
    );
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6 * (1.0 + a.abs());
    assert!(
        close(g["live"].as_f64().unwrap(), live_pnl),
        "{g} vs live {live_pnl}"
    );
    assert!(
        close(g["sim"].as_f64().unwrap(), sim_pnl),
        "{g} vs sim {sim_pnl}"
    );
    let parts: f64 = ["fees", "latency", "queue"]
        .iter()
        .map(|p| g[*p].as_f64().unwrap())
        .sum();
    assert!(
        close(g["total"].as_f64().unwrap(), live_pnl - sim_pnl) && close(parts, live_pnl - sim_pnl),
        "{g}"
    );
    // Without latency the limit orders fill otherwise: a queue part, and orders one side
    // filled that the other did not.
    assert!(g["queue"].as_f64().unwrap().abs() > 1e-6, "{g}");
    let one_sided =
        g["live_only_orders"].as_u64().unwrap() + g["sim_only_orders"].as_u64().unwrap();
    assert!(one_sided > 0, "{g}");
    std::fs::remove_dir_all(&dir).unwrap();
}
