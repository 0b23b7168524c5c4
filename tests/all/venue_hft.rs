//! The realistic venue against an outside engine: hftbacktest (PyPI 2.4.x, in a venv that
//! `scripts/hftbacktest-venv.sh` makes once under ~/.cache) on the shared Binance capture,
//! with the same constant latency, `PartialFillExchange` and `RiskAverseQueueModel`, the same
//! market and limit orders, and the fills compared: identical times, quantities and prices.
//!
//! One timeline for both: each event at its capture (receive) time, made non-decreasing
//! (the importer emits the depth diffs it buffered before the REST snapshot after it); no
//! feed latency; quotes left out (hftbacktest's exchange matches on depth and trades). Orders
//! go out at events whose next event is later, and arrive when no event does, so no tie
//! between an arrival and an event has to be broken the same way by both engines.
//! hftbacktest reports the last fill of each response step: fills are compared per order and
//! step (total quantity, last price, maker or taker). (Its `state_values` position is not the
//! sum of its own orders' fills on this run, so its state is not compared.)
//! Skips, saying so, without the shared capture.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use tapedeck::decision::{Decision, Output};
use tapedeck::event::{Body, Dec, Envelope, OrderTypeName, SideName, TifName};
use tapedeck::import::binance::Importer;
use tapedeck::store::{EventSource, FileStore, FileStoreOptions, SeqRange};
use tapedeck::venue::{VenueConfig, VenueModel, simulate};

use super::{shared_data, tmp};

const LATENCY: i64 = 1_234_567;

/// The venv's python: `$TAPEDECK_HFT_PYTHON`, else made (once) by the script.
fn python() -> String {
    if let Ok(p) = std::env::var("TAPEDECK_HFT_PYTHON") {
        return p;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/hftbacktest-venv.sh");
    let o = std::process::Command::new(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{} failed: hftbacktest could not be installed from PyPI",
        script.display()
    );
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn events_of(capture: &Path, dir: &Path) -> Vec<Envelope> {
    let mut store = FileStore::create(dir, FileStoreOptions::default()).unwrap();
    let mut imp = Importer::new(&mut store, None, None);
    imp.import_file(capture).unwrap();
    imp.finish().unwrap();
    let mut events = Vec::new();
    store
        .read("md:binance-spot:BTCUSDT", SeqRange::ALL, &mut |e| {
            events.push(e);
            Ok(())
        })
        .unwrap();
    events
}

struct Plan {
    /// Depth and trades, on the one timeline.
    events: Vec<Envelope>,
    decisions: Vec<Decision>,
    /// For hftbacktest: [id, time, side, type, tif, price, qty].
    orders: Vec<Value>,
}

fn dec(s: &str) -> Dec {
    s.parse().unwrap()
}

/// Retimes the capture and places a mix of orders near the touch.
fn plan(all: &[Envelope]) -> Plan {
    let mut t = i64::MIN;
    let mut events = Vec::new();
    // The touch as the quotes last said, at each kept event.
    let mut touch = Vec::new();
    let mut quote: Option<(Dec, Dec)> = None;
    for e in all {
        t = t.max(e.ingested_at);
        if let Body::Quote { bid_px, ask_px, .. } = e.body {
            quote = Some((bid_px, ask_px));
            continue;
        }
        let mut e = e.clone();
        e.occurred_at = t;
        events.push(e);
        touch.push(quote);
    }
    let times: std::collections::BTreeSet<i64> = events.iter().map(|e| e.occurred_at).collect();
    let step = events.len() / 90;
    let (mut decisions, mut orders) = (Vec::new(), Vec::new());
    let mut id = 0u64;
    for k in (step..events.len() - step).step_by(step) {
        let (e, next) = (&events[k], &events[k + 1]);
        let Some((bid, ask)) = touch[k] else { continue };
        if next.occurred_at == e.occurred_at || times.contains(&(e.occurred_at + LATENCY)) {
            continue;
        }
        id += 1;
        // `ticks` cents from `p`.
        let off = |p: Dec, ticks: i64| {
            let s = p.scale();
            Dec::new(p.at(s).unwrap() + ticks * 10i64.pow(s as u32 - 2), s)
        };
        let (side, kind, tif, price, qty) = match id % 8 {
            0 => ("buy", "market", "gtc", dec("0"), "0.35"),
            1 => ("sell", "market", "gtc", dec("0"), "0.5"),
            2 => ("buy", "limit", "gtc", bid, "0.02"),
            3 => ("sell", "limit", "gtc", ask, "0.03"),
            4 => ("buy", "limit", "ioc", off(ask, 3), "0.8"),
            5 => ("sell", "limit", "gtc", off(ask, 1), "0.01"),
            6 => ("buy", "limit", "gtc", off(bid, -1), "0.015"),
            _ => ("sell", "limit", "ioc", off(bid, -2), "0.6"),
        };
        orders.push(json!([
            id,
            e.occurred_at,
            side,
            kind,
            tif,
            price.to_string(),
            qty
        ]));
        decisions.push(Decision {
            seq: e.seq,
            time_ns: e.occurred_at,
            output: Output::NewOrder {
                instrument: 1,
                client_order_id: id,
                side: if side == "buy" {
                    SideName::Buy
                } else {
                    SideName::Sell
                },
                order_type: if kind == "market" {
                    OrderTypeName::Market
                } else {
                    OrderTypeName::Limit
                },
                tif: if tif == "ioc" {
                    TifName::Ioc
                } else {
                    TifName::Gtc
                },
                price,
                qty: dec(qty),
            },
        });
    }
    Plan {
        events,
        decisions,
        orders,
    }
}

/// The events as hftbacktest rows: levels of a diff bids first, as the venue applies them.
fn rows(events: &[Envelope]) -> Vec<Value> {
    let mut out = Vec::new();
    for e in events {
        let t = e.occurred_at;
        match &e.body {
            Body::BookSnapshot { bids, asks, .. } => {
                out.push(json!(["c", t, "", "0", "0"]));
                for l in bids {
                    out.push(json!(["s", t, "b", l[0].to_string(), l[1].to_string()]));
                }
                for l in asks {
                    out.push(json!(["s", t, "a", l[0].to_string(), l[1].to_string()]));
                }
            }
            Body::BookDelta { bids, asks, .. } => {
                for l in bids {
                    out.push(json!(["d", t, "b", l[0].to_string(), l[1].to_string()]));
                }
                for l in asks {
                    out.push(json!(["d", t, "a", l[0].to_string(), l[1].to_string()]));
                }
            }
            Body::Trade {
                price,
                qty,
                aggressor,
                ..
            } => {
                let side = match aggressor {
                    Some(SideName::Buy) => "buy",
                    _ => "sell",
                };
                out.push(json!(["t", t, side, price.to_string(), qty.to_string()]));
            }
            _ => {}
        }
    }
    out
}

/// (order, time) -> (quantity, last price, maker), rounded to exact units.
type Steps = BTreeMap<(u64, i64), (i64, i64, bool)>;

fn units(x: f64, per: f64) -> i64 {
    (x * per).round() as i64
}

#[test]
fn the_venue_fills_as_hftbacktest_does_on_the_binance_capture() {
    let Some(capture) = shared_data("binance/spot_btcusdt_20240808.gz") else {
        return;
    };
    let dir = tmp("hft");
    let all = events_of(&capture, &dir.join("store"));
    let p = plan(&all);
    assert!(p.decisions.len() >= 60, "{} orders", p.decisions.len());
    let cfg = VenueConfig {
        latency_ns: LATENCY,
        maker_fee_bps: 0.0,
        taker_fee_bps: 0.0,
        // hftbacktest's market orders walk 100 ticks.
        model: Some(VenueModel {
            market_band: Some(1.0),
            ..VenueModel::default()
        }),
        ..VenueConfig::default()
    };
    let ours = simulate(
        &p.events,
        &p.decisions,
        &BTreeMap::from([(1, "BTCUSDT".to_string())]),
        &cfg,
    );
    let mut mine: Steps = BTreeMap::new();
    for f in &ours.fills {
        let s =
            mine.entry((f.client_order_id, f.time_ns))
                .or_insert((0, 0, f.liquidity == "maker"));
        s.0 += units(f.qty, 1e8);
        s.1 = units(f.price, 1e2);
    }
    let spec = json!({
        "events": rows(&p.events),
        "orders": p.orders,
        "latency_ns": LATENCY,
        "tick_size": 0.01,
        "lot_size": 0.00001,
    });
    std::fs::write(dir.join("spec.json"), spec.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/hft_compare.py");
    let o = std::process::Command::new(python())
        .arg(&script)
        .arg(dir.join("spec.json"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(o.status.success(), "hftbacktest run failed");
    let result: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut theirs: Steps = BTreeMap::new();
    for r in result["fills"].as_array().unwrap() {
        theirs.insert(
            (r[0].as_u64().unwrap(), r[1].as_i64().unwrap()),
            (
                units(r[2].as_f64().unwrap(), 1e8),
                units(r[3].as_f64().unwrap(), 1e2),
                r[4].as_bool().unwrap(),
            ),
        );
    }
    let (market, limit): (Vec<_>, Vec<_>) = mine.iter().partition(|(_, v)| !v.2);
    let partial = ours
        .fills
        .iter()
        .filter(|f| f.liquidity == "maker")
        .map(|f| f.client_order_id)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    eprintln!(
        "venue vs hftbacktest: {} orders, {} taker steps, {} maker steps ({} orders), \
         hftbacktest {} steps",
        p.decisions.len(),
        market.len(),
        limit.len(),
        partial,
        theirs.len()
    );
    if mine != theirs {
        let keys: std::collections::BTreeSet<_> = mine.keys().chain(theirs.keys()).collect();
        for k in keys {
            if mine.get(k) != theirs.get(k) {
                eprintln!(
                    "{k:?}: tapedeck {:?}, hftbacktest {:?}",
                    mine.get(k),
                    theirs.get(k)
                );
            }
        }
        panic!("the fills differ (above)");
    }
    assert!(
        market.len() >= 20 && limit.len() >= 5,
        "too few fills to compare"
    );
    // Some market orders walked several levels (more fills than steps).
    let taker_fills = ours.fills.iter().filter(|f| f.liquidity == "taker").count();
    assert!(taker_fills > market.len(), "no walk over several levels");
    std::fs::remove_dir_all(&dir).unwrap();
}
