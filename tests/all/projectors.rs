//! The repo's projectors, in Wasm, over hand-made lifecycles with known answers; and their
//! state survives snapshot/restore.

use serde_json::{Value, json};
use tapedeck::codec::*;
use tapedeck_test_guests as guests;

use super::{batch, load, rt};

fn run(path: &str, config: &str, events: &[(u32, Payload<'_>)]) -> Value {
    let mut inst = rt().instantiate(&load(path)).unwrap();
    inst.init(config).unwrap();
    inst.on_events(&batch(1, events)).unwrap();
    let state = inst.state().unwrap();
    // Restoring the snapshot into a fresh instance gives the same state.
    let mut again = rt().instantiate(&load(path)).unwrap();
    again.restore(&inst.snapshot().unwrap()).unwrap();
    assert_eq!(again.state().unwrap(), state);
    serde_json::from_slice(&state).unwrap()
}

fn fill(id: u64, side: Side, price: i64, qty: i64, fee: i64, is_final: bool) -> Payload<'static> {
    Payload::Fill(Fill {
        client_order_id: id,
        trade_id: id * 10,
        side,
        liquidity: Liquidity::Taker,
        is_final,
        price,
        qty,
        fee: Decimal::new(fee, 2),
    })
}

#[test]
fn positions_follow_average_cost_accounting() {
    // Buy 2 @ 100, buy 2 @ 110 (avg 105), sell 3 @ 120 (realize 45), sell 3 @ 90 (realize -15 on the
    // one closed, flip to -2 @ 90). Fees 0.01 each.
    let s = run(
        guests::POSITIONS,
        "",
        &[
            (7, fill(1, Side::Buy, 10_000, 2_000, 1, true)),
            (7, fill(2, Side::Buy, 11_000, 2_000, 1, true)),
            (7, fill(3, Side::Sell, 12_000, 3_000, 1, true)),
            (7, fill(4, Side::Sell, 9_000, 3_000, 1, true)),
        ],
    );
    let p = &s["instruments"]["7"];
    assert_eq!(p["qty"], json!(-2.0));
    assert_eq!(p["avg_price"], json!(90.0));
    assert_eq!(p["fills"], json!(4));
    let pnl = p["realized_pnl"].as_f64().unwrap();
    assert!((pnl - (45.0 - 15.0 - 0.04)).abs() < 1e-9, "{pnl}");
}

#[test]
fn orders_walk_the_state_machine_and_keep_anomalies() {
    let submit = |id, qty| {
        Payload::OrderSubmitted(OrderSubmitted {
            client_order_id: id,
            side: Side::Buy,
            order_type: OrderType::Limit,
            tif: TimeInForce::Gtc,
            price: 100,
            qty,
        })
    };
    let s = run(
        guests::ORDERS,
        "",
        &[
            (1, submit(1, 2_000)),
            (
                1,
                Payload::OrderAcked(OrderAcked {
                    client_order_id: 1,
                    venue_order_id: 77,
                }),
            ),
            (1, fill(1, Side::Buy, 100, 1_000, 0, false)),
            (1, fill(1, Side::Buy, 100, 1_000, 0, true)),
            (1, submit(2, 1_000)),
            (
                1,
                Payload::OrderRejected(OrderRejected {
                    client_order_id: 2,
                    reason: "insufficient balance",
                }),
            ),
            (1, submit(3, 1_000)),
            (
                1,
                Payload::OrderAcked(OrderAcked {
                    client_order_id: 3,
                    venue_order_id: 78,
                }),
            ),
            (
                1,
                Payload::OrderCancelled(OrderCancelled { client_order_id: 3 }),
            ),
            (
                1,
                Payload::OrderAcked(OrderAcked {
                    client_order_id: 3,
                    venue_order_id: 78,
                }),
            ),
            (1, fill(9, Side::Buy, 100, 1_000, 0, true)),
            (1, submit(4, 1_000)),
        ],
    );
    assert_eq!(s["orders"]["1"]["status"], "filled");
    assert_eq!(s["orders"]["1"]["filled_qty"], json!(2.0));
    assert_eq!(s["orders"]["1"]["venue_order_id"], json!(77));
    assert_eq!(s["orders"]["2"]["status"], "rejected");
    assert_eq!(s["orders"]["2"]["reject_reason"], "insufficient balance");
    assert_eq!(s["orders"]["3"]["status"], "cancelled");
    assert_eq!(s["orders"]["4"]["status"], "submitted");
    assert_eq!(s["open"], json!(1));
    let anomalies = s["anomalies"].as_array().unwrap();
    assert_eq!(anomalies.len(), 2, "{anomalies:?}");
    assert_eq!(anomalies[0]["seq"], json!(10));
    assert_eq!(anomalies[1]["client_order_id"], json!(9));
}

#[test]
fn book_applies_snapshot_then_deltas_best_first() {
    let l = |price, qty| Level { price, qty };
    let (bids, asks) = (
        [l(10_000, 1_000), l(9_990, 2_000), l(9_980, 3_000)],
        [l(10_010, 1_500), l(10_020, 500)],
    );
    let (d_bids, d_asks) = ([l(10_000, 0), l(9_995, 4_000)], [l(10_005, 100)]);
    let s = run(
        guests::BOOK,
        r#"{"depth": 2}"#,
        &[
            (
                3,
                Payload::BookSnapshot(BookSnapshot {
                    update_id: 100,
                    bids: Levels::Slice(&bids),
                    asks: Levels::Slice(&asks),
                }),
            ),
            (
                3,
                Payload::BookDelta(BookDelta {
                    first_update_id: 101,
                    final_update_id: 105,
                    prev_final_update_id: 0,
                    bids: Levels::Slice(&d_bids),
                    asks: Levels::Slice(&d_asks),
                }),
            ),
        ],
    );
    let b = &s["books"]["3"];
    assert_eq!(b["bids"], json!([[99.95, 4.0], [99.9, 2.0]]));
    assert_eq!(b["asks"], json!([[100.05, 0.1], [100.1, 1.5]]));
    assert_eq!(b["last_update_id"], json!(105));
}

#[test]
fn a_strategy_has_no_state_export() {
    let mut inst = rt().instantiate(&load(guests::EMA_CROSS)).unwrap();
    let err = inst.state().unwrap_err();
    assert!(
        err.to_string().contains("a projector was asked for"),
        "{err}"
    );
}
