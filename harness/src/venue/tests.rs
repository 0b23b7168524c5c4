//! The venue's rules on small hand-made markets.

use super::*;
use crate::event::{Body, Envelope, TifName};

fn quote(seq: u64, bid: &str, ask: &str) -> Envelope {
    Envelope::new(
        "s",
        seq,
        seq as i64 * 1000,
        Some("X"),
        Body::Quote {
            bid_px: bid.parse().unwrap(),
            bid_qty: "1".parse().unwrap(),
            ask_px: ask.parse().unwrap(),
            ask_qty: "1".parse().unwrap(),
            update_id: None,
        },
    )
}

fn trade(seq: u64, px: &str) -> Envelope {
    Envelope::new(
        "s",
        seq,
        seq as i64 * 1000,
        Some("X"),
        Body::Trade {
            price: px.parse().unwrap(),
            qty: "1".parse().unwrap(),
            trade_id: seq,
            aggressor: None,
        },
    )
}

fn order(seq: u64, side: &str, kind: &str, price: &str, qty: &str) -> Decision {
    Decision {
        seq,
        time_ns: seq as i64 * 1000,
        output: Output::NewOrder {
            instrument: 1,
            client_order_id: seq << 8,
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
            tif: TifName::Gtc,
            price: price.parse().unwrap(),
            qty: qty.parse().unwrap(),
        },
    }
}

fn ids() -> BTreeMap<u32, String> {
    BTreeMap::from([(1, "X".to_string())])
}

#[test]
fn market_orders_fill_at_the_opposite_best_and_pnl_is_exact() {
    let events = [
        quote(1, "100", "101"),
        quote(2, "110", "111"),
        quote(3, "110", "111"),
    ];
    let cfg = VenueConfig {
        taker_fee_bps: 10.0,
        ..Default::default()
    };
    let p = simulate(
        &events,
        &[
            order(1, "buy", "market", "0", "2"),
            order(2, "sell", "market", "0", "2"),
        ],
        &ids(),
        &cfg,
    );
    assert_eq!(p.trades, 2);
    assert_eq!((p.fills[0].price, p.fills[1].price), (101.0, 110.0));
    // Bought 2 @ 101, sold 2 @ 110: +18, fees 0.1% of 202 + 220 = 0.422.
    assert!((p.fees - 0.422).abs() < 1e-12, "{}", p.fees);
    assert!((p.pnl - (18.0 - 0.422)).abs() < 1e-12, "{}", p.pnl);
    assert!((p.turnover - 422.0).abs() < 1e-12);
}

#[test]
fn latency_delays_arrival_and_limits_rest_until_crossed() {
    let events = [
        quote(1, "100", "101"),
        quote(2, "100", "101"),
        trade(3, "99.5"),
        quote(4, "98", "99"),
    ];
    // A buy at 99.8 rests; the trade at 99.5 trades through it (maker, at the limit).
    let p = simulate(
        &events,
        &[order(1, "buy", "limit", "99.8", "1")],
        &ids(),
        &VenueConfig::default(),
    );
    assert_eq!(p.trades, 1);
    assert_eq!(
        (p.fills[0].seq, p.fills[0].price, p.fills[0].liquidity),
        (3, 99.8, "maker")
    );
    // With 2.5 events of latency the market order arrives at seq 4 and pays that ask.
    let cfg = VenueConfig {
        latency_ns: 2500,
        ..Default::default()
    };
    let p = simulate(
        &events,
        &[order(1, "buy", "market", "0", "1")],
        &ids(),
        &cfg,
    );
    assert_eq!((p.fills[0].seq, p.fills[0].price), (4, 99.0));
}

#[test]
fn drawdown_is_peak_to_trough_of_marked_equity() {
    let events = [
        quote(1, "100", "100"),
        quote(2, "110", "110"),
        quote(3, "90", "90"),
        quote(4, "95", "95"),
    ];
    let p = simulate(
        &events,
        &[order(1, "buy", "market", "0", "1")],
        &ids(),
        &VenueConfig {
            taker_fee_bps: 0.0,
            ..Default::default()
        },
    );
    assert!((p.max_drawdown - 20.0).abs() < 1e-12, "{}", p.max_drawdown);
    assert!((p.pnl + 5.0).abs() < 1e-12);
}

#[test]
fn with_an_interval_the_curve_keeps_every_fill_and_one_point_per_interval() {
    // Quotes every 1000 ns (seq * 1000); an interval of 2500 ns; a fill at seq 4.
    let events: Vec<Envelope> = (1..=9).map(|s| quote(s, "100", "101")).collect();
    let cfg = VenueConfig {
        equity_interval_ns: Some(2500),
        ..Default::default()
    };
    let p = simulate(
        &events,
        &[order(4, "buy", "market", "0", "1")],
        &ids(),
        &cfg,
    );
    let seqs: Vec<u64> = p.equity.iter().map(|e| e.seq).collect();
    // Intervals [0, 2500): seqs 1-2, [2500, 5000): 3-4, [5000, 7500): 5-7, [7500, ..): 8-9.
    // The first event of each, the fill at 4, and the last event.
    assert_eq!(seqs, [1, 3, 4, 5, 8, 9]);
}

#[test]
fn closing_fills_realize_pnl_against_average_cost() {
    let events = [
        quote(1, "100", "101"),
        quote(2, "110", "111"),
        quote(3, "90", "91"),
        quote(4, "95", "96"),
        quote(5, "95", "96"),
    ];
    let p = simulate(
        &events,
        &[
            // Long 2 at 101; sell 1 at 110 (+9); sell 2 at 90: closes 1 (-11), opens a short
            // at 90; buy 1 at 96 closes it (-6).
            order(1, "buy", "market", "0", "2"),
            order(2, "sell", "market", "0", "1"),
            order(3, "sell", "market", "0", "2"),
            order(4, "buy", "market", "0", "1"),
        ],
        &ids(),
        &VenueConfig {
            taker_fee_bps: 0.0,
            ..Default::default()
        },
    );
    let s = &p.stats;
    assert_eq!((s.closed.trades, s.closed.wins, s.closed.losses), (3, 1, 2));
    assert_eq!((s.closed.gross_win, s.closed.gross_loss), (9.0, 17.0));
    assert_eq!((s.avg_win, s.avg_loss), (Some(9.0), Some(-8.5)));
    assert_eq!(s.profit_factor, Some(9.0 / 17.0));
    assert_eq!(s.win_rate, Some(1.0 / 3.0));
    // -202 + 110 + 180 - 96 = -8: the realized -8, flat at the end.
    assert!((p.pnl + 8.0).abs() < 1e-12, "{}", p.pnl);
    // A position is open from the event at 1000 ns until the one at 4000 ns, of 4000 ns.
    assert_eq!((s.exposure_ns, s.span_ns), (3000, 4000));
    assert_eq!(s.exposure, Some(0.75));
    let x = &s.instruments["X"];
    assert_eq!((x.fills, x.position, x.closed.trades), (4, 0.0, 3));
}

#[test]
fn closing_a_large_position_realizes_pnl_without_overflow() {
    // 4,000,000 units at 0.1: cost × closed quantity is past i128 at the venue's scales, the
    // realized PnL is not.
    let events = [
        quote(1, "0.09", "0.1"),
        quote(2, "0.12", "0.13"),
        quote(3, "0.12", "0.13"),
    ];
    let p = simulate(
        &events,
        &[
            order(1, "buy", "market", "0", "4000000"),
            order(2, "sell", "market", "0", "3000000"),
        ],
        &ids(),
        &VenueConfig {
            taker_fee_bps: 0.0,
            ..Default::default()
        },
    );
    // Bought at 0.1, sold 3M at 0.12: +60,000 realized; the last 1M marked at the mid 0.125.
    assert_eq!(p.stats.closed.trades, 1);
    assert_eq!(p.stats.closed.gross_win, 60_000.0);
    assert!((p.pnl - 85_000.0).abs() < 1e-6, "{}", p.pnl);
}

fn bids_only(seq: u64, bid: &str) -> Envelope {
    Envelope::new(
        "s",
        seq,
        seq as i64 * 1000,
        Some("X"),
        Body::BookSnapshot {
            update_id: seq,
            bids: vec![[bid.parse().unwrap(), "1".parse().unwrap()]],
            asks: vec![],
        },
    )
}

// See: review of #15, "a position with no two-sided top of book is marked at 0".
#[test]
fn one_sided_book_marks_at_the_last_trade_else_the_previous_mark_not_zero() {
    let events = [
        quote(1, "100", "101"),
        // One-sided, no trade yet: the previous mark (the mid 100.5) stands.
        bids_only(2, "99"),
        // A trade: the mark is its price while the book stays one-sided.
        trade(3, "104"),
        bids_only(4, "98"),
        // Two-sided again: the mid.
        quote(5, "106", "108"),
    ];
    let p = simulate(
        &events,
        &[order(1, "buy", "market", "0", "1")],
        &ids(),
        &VenueConfig {
            taker_fee_bps: 0.0,
            sample_every: 1,
            ..Default::default()
        },
    );
    let equity: Vec<f64> = p.equity.iter().map(|e| e.equity).collect();
    // Bought 1 at 101.
    assert_eq!(equity, [-0.5, -0.5, 3.0, 3.0, 6.0]);
    assert_eq!(p.max_drawdown, 0.5, "the spread paid at the start, no more");
    assert_eq!(p.pnl, 6.0);
}

fn cancel(seq: u64, of: u64) -> Decision {
    Decision {
        seq,
        time_ns: seq as i64 * 1000,
        output: Output::Cancel {
            instrument: 1,
            client_order_id: of << 8,
        },
    }
}

// See: review of #15, "a cancel takes effect when decided, not after its latency".
#[test]
fn a_cancel_arrives_after_the_latency_and_the_order_can_fill_meanwhile() {
    let events = [
        quote(1, "100", "101"),
        quote(2, "100", "101"),
        trade(3, "99.5"),
        quote(4, "100", "101"),
    ];
    // A buy at 99.8 (seq 1), cancelled at seq 2 (t = 2000); the trade at t = 3000 goes
    // through its price.
    let run = |latency_ns| {
        simulate(
            &events,
            &[order(1, "buy", "limit", "99.8", "1"), cancel(2, 1)],
            &ids(),
            &VenueConfig {
                latency_ns,
                ..Default::default()
            },
        )
    };
    // The cancel arrives at 2500, before the trade: no fill, nothing left resting.
    let p = run(500);
    assert_eq!((p.trades, p.open_orders), (0, 0));
    // At 3500: after the trade, which fills the order (live since 2500).
    let p = run(1500);
    assert_eq!(p.trades, 1);
    assert_eq!((p.fills[0].seq, p.fills[0].price), (3, 99.8));
    // Arriving after the order was filled, the cancel finds nothing.
    assert_eq!(p.open_orders, 0);
    // At 5000, past the last event: the order is still resting at the end (nothing filled
    // it), and counts as open.
    let p = run(3000);
    assert_eq!((p.trades, p.open_orders), (0, 1));
}
