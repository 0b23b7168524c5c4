//! The realistic model's rules on small hand-made books, with the fills worked out by hand.

use super::*;
use crate::event::{Body, Envelope, TifName};

fn ev(seq: u64, body: Body) -> Envelope {
    Envelope::new("s", seq, seq as i64 * 1000, Some("X"), body)
}

fn lv(levels: &[(&str, &str)]) -> Vec<crate::event::LevelPair> {
    levels
        .iter()
        .map(|(p, q)| [p.parse().unwrap(), q.parse().unwrap()])
        .collect()
}

fn snap(seq: u64, bids: &[(&str, &str)], asks: &[(&str, &str)]) -> Envelope {
    ev(
        seq,
        Body::BookSnapshot {
            update_id: seq,
            bids: lv(bids),
            asks: lv(asks),
        },
    )
}

fn delta(seq: u64, bids: &[(&str, &str)], asks: &[(&str, &str)]) -> Envelope {
    ev(
        seq,
        Body::BookDelta {
            first_update_id: seq,
            final_update_id: seq,
            prev_final_update_id: 0,
            bids: lv(bids),
            asks: lv(asks),
        },
    )
}

/// A trade; `aggressor` "sell" means a seller hit the bids.
fn trade(seq: u64, px: &str, qty: &str, aggressor: &str) -> Envelope {
    ev(
        seq,
        Body::Trade {
            price: px.parse().unwrap(),
            qty: qty.parse().unwrap(),
            trade_id: seq,
            aggressor: Some(if aggressor == "buy" {
                SideName::Buy
            } else {
                SideName::Sell
            }),
        },
    )
}

fn order(seq: u64, side: &str, kind: &str, tif: TifName, price: &str, qty: &str) -> Decision {
    Decision {
        seq,
        time_ns: seq as i64 * 1000,
        output: Output::NewOrder {
            instrument: 1,
            client_order_id: seq,
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
            tif,
            price: price.parse().unwrap(),
            qty: qty.parse().unwrap(),
        },
    }
}

fn model(m: VenueModel) -> VenueConfig {
    VenueConfig {
        maker_fee_bps: 0.0,
        taker_fee_bps: 0.0,
        model: Some(m),
        ..Default::default()
    }
}

fn run(events: &[Envelope], decisions: &[Decision], cfg: &VenueConfig) -> Performance {
    simulate(
        events,
        decisions,
        &BTreeMap::from([(1, "X".to_string())]),
        cfg,
    )
}

/// (seq, time, order, price, qty, liquidity) of each fill.
fn fills(p: &Performance) -> Vec<(u64, i64, u64, f64, f64, &'static str)> {
    p.fills
        .iter()
        .map(|f| (f.seq, f.time_ns, f.order_seq, f.price, f.qty, f.liquidity))
        .collect()
}

fn book() -> Envelope {
    snap(
        1,
        &[("100", "1"), ("99", "2")],
        &[("101", "1"), ("102", "2"), ("103", "5")],
    )
}

#[test]
fn market_orders_walk_the_book_and_own_impact_takes_the_levels() {
    let events = [book(), delta(2, &[], &[]), delta(3, &[], &[])];
    let orders = [
        order(1, "buy", "market", TifName::Gtc, "0", "2.5"),
        order(2, "buy", "market", TifName::Gtc, "0", "1"),
    ];
    let p = run(&events, &orders, &model(VenueModel::default()));
    assert_eq!(
        fills(&p),
        vec![
            (1, 1000, 1, 101.0, 1.0, "taker"),
            (1, 1000, 1, 102.0, 1.5, "taker"),
            // Without own impact the book is as recorded.
            (2, 2000, 2, 101.0, 1.0, "taker"),
        ]
    );
    let p = run(
        &events,
        &orders,
        &model(VenueModel {
            own_impact: true,
            ..Default::default()
        }),
    );
    assert_eq!(
        fills(&p)[2..],
        [
            (2, 2000, 2, 102.0, 0.5, "taker"),
            (2, 2000, 2, 103.0, 0.5, "taker"),
        ]
    );
    // A market order bigger than the book fills what is there; the rest expires.
    let p = run(
        &events,
        &[order(1, "sell", "market", TifName::Gtc, "0", "5")],
        &model(VenueModel::default()),
    );
    assert_eq!(p.fills.iter().map(|f| f.qty).sum::<f64>(), 3.0);
    assert_eq!(p.open_orders, 0);
}

#[test]
fn marketable_limits_follow_their_time_in_force() {
    let events = [book(), delta(2, &[], &[])];
    let one = |tif, qty: &str, m: VenueModel| {
        let p = run(
            &events,
            &[order(1, "buy", "limit", tif, "102", qty)],
            &model(m),
        );
        (
            p.fills
                .iter()
                .map(|f| (f.price, f.qty, f.liquidity))
                .collect::<Vec<_>>(),
            p.open_orders,
        )
    };
    let d = VenueModel::default;
    // IOC: up to its price, the rest expires.
    assert_eq!(
        one(TifName::Ioc, "4", d()),
        (vec![(101.0, 1.0, "taker"), (102.0, 2.0, "taker")], 0)
    );
    // FOK: all or nothing.
    assert_eq!(one(TifName::Fok, "4", d()), (vec![], 0));
    assert_eq!(
        one(TifName::Fok, "3", d()),
        (vec![(101.0, 1.0, "taker"), (102.0, 2.0, "taker")], 0)
    );
    // Post-only: never takes.
    assert_eq!(one(TifName::PostOnly, "1", d()), (vec![], 0));
    // GTC: the levels before its price, then the rest at its price (hftbacktest's rule).
    assert_eq!(
        one(TifName::Gtc, "4", d()),
        (vec![(101.0, 1.0, "taker"), (102.0, 3.0, "taker")], 0)
    );
    // With own impact the rest rests.
    let impact = VenueModel {
        own_impact: true,
        ..Default::default()
    };
    assert_eq!(
        one(TifName::Gtc, "4", impact),
        (vec![(101.0, 1.0, "taker"), (102.0, 2.0, "taker")], 1)
    );
}

#[test]
fn risk_averse_queue_fills_after_the_quantity_ahead_trades() {
    let events = [
        book(),
        // 3 ahead at 100 once this delta lands.
        delta(2, &[("100", "3")], &[]),
        // Our buy (1 @ 100) arrives at 2500: 3 ahead.
        trade(3, "100", "2", "sell"),     // 1 ahead
        trade(4, "100", "5", "buy"),      // a buyer lifting: not our side
        delta(5, &[("100", "0.5")], &[]), // cancels: clamped to 0.5 ahead
        trade(6, "100", "1", "sell"),     // 0.5 past us: fill 0.5
        trade(7, "100", "2", "sell"),     // the rest: 0.5
        trade(8, "100", "2", "sell"),
    ];
    let cfg = VenueConfig {
        latency_ns: 500,
        ..model(VenueModel::default())
    };
    let p = run(
        &events,
        &[order(2, "buy", "limit", TifName::Gtc, "100", "1")],
        &cfg,
    );
    assert_eq!(
        fills(&p),
        vec![
            (6, 6000, 2, 100.0, 0.5, "maker"),
            (7, 7000, 2, 100.0, 0.5, "maker"),
        ]
    );
    // A trade through the price fills the whole order at its price.
    let p = run(
        &[book(), trade(2, "99", "0.1", "sell")],
        &[order(1, "buy", "limit", TifName::Gtc, "100", "1")],
        &model(VenueModel::default()),
    );
    assert_eq!(fills(&p), vec![(2, 2000, 1, 100.0, 1.0, "maker")]);
}

#[test]
fn the_opposite_best_reaching_a_resting_order_fills_it() {
    let events = [book(), delta(2, &[("102", "1")], &[]), delta(3, &[], &[])];
    let p = run(
        &events,
        &[order(1, "sell", "limit", TifName::Gtc, "102", "1")],
        &model(VenueModel::default()),
    );
    assert_eq!(fills(&p), vec![(2, 2000, 1, 102.0, 1.0, "maker")]);
}

#[test]
fn arrivals_meet_the_book_as_the_previous_event_left_it() {
    // The order leaves at 1000 and arrives at 2500: after seq 2 (ask 101), before seq 3
    // (which lifts the ask to 105). It fills at 101, stamped 2500, seen at seq 3.
    let events = [
        book(),
        delta(2, &[], &[]),
        delta(
            3,
            &[],
            &[("101", "0"), ("102", "0"), ("103", "0"), ("105", "9")],
        ),
    ];
    let cfg = VenueConfig {
        latency_ns: 1500,
        ..model(VenueModel::default())
    };
    let p = run(
        &events,
        &[order(1, "buy", "market", TifName::Gtc, "0", "1")],
        &cfg,
    );
    assert_eq!(fills(&p), vec![(3, 2500, 1, 101.0, 1.0, "taker")]);
}

#[test]
fn cancels_arrive_with_their_latency() {
    let events = [
        book(),
        delta(2, &[], &[]),
        trade(3, "99", "1", "sell"),
        trade(4, "99", "1", "sell"),
    ];
    let cancel = |seq| Decision {
        seq,
        time_ns: seq as i64 * 1000,
        output: Output::Cancel {
            instrument: 1,
            client_order_id: 1,
        },
    };
    let orders = [
        order(1, "buy", "limit", TifName::Gtc, "100", "1"),
        cancel(2),
    ];
    // The cancel arrives at 2000 + 1500, after the trade through at seq 3: too late.
    let cfg = VenueConfig {
        latency_ns: 1500,
        ..model(VenueModel::default())
    };
    let p = run(&events, &orders, &cfg);
    assert_eq!(fills(&p), vec![(3, 3000, 1, 100.0, 1.0, "maker")]);
    // At 2500 it is in time.
    let cfg = VenueConfig {
        latency_ns: 500,
        ..model(VenueModel::default())
    };
    let p = run(&events, &orders, &cfg);
    assert!(p.fills.is_empty());
    let p = run(&events, &orders[..1], &cfg);
    assert_eq!(fills(&p), vec![(3, 3000, 1, 100.0, 1.0, "maker")]);
}

#[test]
fn fees_follow_schedules_rebates_and_tiers() {
    let events = [
        book(),
        delta(2, &[], &[]),
        delta(3, &[], &[]),
        trade(4, "99", "1", "sell"),
    ];
    let m = VenueModel {
        fees: Some(FeeSchedule {
            maker_fee_bps: -1.0,
            taker_fee_bps: 10.0,
            tiers: vec![FeeTier {
                from_turnover: 150.0,
                maker_fee_bps: -2.0,
                taker_fee_bps: 5.0,
            }],
        }),
        ..Default::default()
    };
    let p = run(
        &events,
        &[
            order(1, "buy", "market", TifName::Gtc, "0", "1"), // 101, turnover 0: 10 bps
            order(2, "buy", "market", TifName::Gtc, "0", "1"), // 101, turnover 101: 10 bps
            order(3, "buy", "limit", TifName::Gtc, "100", "1"), // maker 100, turnover 202: -2 bps
        ],
        &model(m),
    );
    let fees: Vec<f64> = p.fills.iter().map(|f| f.fee).collect();
    assert_eq!(fees.len(), 3);
    assert!((fees[0] - 0.101).abs() < 1e-12, "{fees:?}");
    assert!((fees[1] - 0.101).abs() < 1e-12, "{fees:?}");
    assert!((fees[2] + 0.02).abs() < 1e-12, "{fees:?}");
    // Per instrument schedules win over the default.
    let m = VenueModel {
        instrument_fees: BTreeMap::from([(
            "X".to_string(),
            FeeSchedule {
                maker_fee_bps: 0.0,
                taker_fee_bps: 1.0,
                tiers: vec![],
            },
        )]),
        ..Default::default()
    };
    let p = run(
        &events,
        &[order(1, "buy", "market", TifName::Gtc, "0", "1")],
        &model(m),
    );
    assert!((p.fills[0].fee - 0.0101).abs() < 1e-12);
}

#[test]
fn funding_is_paid_on_the_position() {
    let funding = ev(
        3,
        Body::Funding {
            rate: "0.0001".parse().unwrap(),
            mark_price: "100".parse().unwrap(),
            payment: "0".parse().unwrap(),
        },
    );
    let events = [book(), delta(2, &[], &[]), funding];
    let orders = [order(1, "buy", "market", TifName::Gtc, "0", "2")];
    let p = run(
        &events,
        &orders,
        &model(VenueModel {
            funding: true,
            ..Default::default()
        }),
    );
    // Long 2 at a mark of 100, rate 1 bp: pays 0.02.
    assert!((p.funding + 0.02).abs() < 1e-12, "{}", p.funding);
    let q = run(&events, &orders, &model(VenueModel::default()));
    assert_eq!(q.funding, 0.0);
    assert!((q.pnl - p.pnl - 0.02).abs() < 1e-12);
}

#[test]
fn funding_on_a_large_position_at_a_fine_rate_does_not_overflow() {
    let events = [
        snap(1, &[("99999", "5000000")], &[("100000", "5000000")]),
        delta(2, &[], &[]),
        ev(
            3,
            Body::Funding {
                // 1 bp written with 18 places: position × mark × mantissa is ~1e43.
                rate: "0.000100000000000000".parse().unwrap(),
                mark_price: "100000".parse().unwrap(),
                payment: "0".parse().unwrap(),
            },
        ),
    ];
    let orders = [order(1, "buy", "market", TifName::Gtc, "0", "1000000")];
    let cfg = model(VenueModel {
        funding: true,
        ..Default::default()
    });
    let p = run(&events, &orders, &cfg);
    // Long 1e6 at a mark of 1e5, 1 bp: pays 1e7.
    assert!((p.funding + 1e7).abs() < 1e-6, "{}", p.funding);
}

#[test]
fn own_impact_holds_on_a_quote_only_book_while_the_quote_stays() {
    let quote = |seq: u64, ask: &str, qty: &str| {
        ev(
            seq,
            Body::Quote {
                bid_px: "99".parse().unwrap(),
                bid_qty: "5".parse().unwrap(),
                ask_px: ask.parse().unwrap(),
                ask_qty: qty.parse().unwrap(),
                update_id: None,
            },
        )
    };
    // Ask 100 x 2; a buy takes 1.5; the next quote at the same price still shows 2 as
    // recorded, of which 0.5 is left to us; a quote at a new price is the market's again.
    let events = [
        quote(1, "100", "2"),
        quote(2, "100", "2"),
        quote(3, "100", "2"),
        quote(4, "101", "2"),
    ];
    let orders = [
        order(1, "buy", "market", TifName::Gtc, "0", "1.5"),
        order(2, "buy", "market", TifName::Gtc, "0", "1"),
        order(4, "buy", "market", TifName::Gtc, "0", "1"),
    ];
    let cfg = model(VenueModel {
        own_impact: true,
        ..Default::default()
    });
    let p = run(&events, &orders, &cfg);
    assert_eq!(
        fills(&p),
        vec![
            (1, 1000, 1, 100.0, 1.5, "taker"),
            (2, 2000, 2, 100.0, 0.5, "taker"),
            (4, 4000, 4, 101.0, 1.0, "taker"),
        ]
    );
}

#[test]
fn empirical_latency_is_reproducible_from_the_seed() {
    let mut events = vec![book()];
    for s in 2..200 {
        events.push(delta(s, &[], &[]));
    }
    let orders: Vec<Decision> = (1..150)
        .map(|s| order(s, "buy", "market", TifName::Gtc, "0", "0.001"))
        .collect();
    let cfg = |seed| {
        model(VenueModel {
            order_latency: Some(Latency::Empirical {
                quantiles_ns: vec![0, 1000, 20_000],
            }),
            seed,
            ..Default::default()
        })
    };
    let times = |seed| {
        run(&events, &orders, &cfg(seed))
            .fills
            .iter()
            .map(|f| f.time_ns - f.order_seq as i64 * 1000)
            .collect::<Vec<_>>()
    };
    let a = times(1);
    assert_eq!(a, times(1));
    assert_ne!(a, times(2));
    assert!(a.iter().all(|l| (0..=20_000).contains(l)));
    assert!(a.iter().any(|l| *l > 1000));
}

#[test]
fn bad_model_fields_are_named() {
    let e = VenueModel::from_json(r#"{"queue": {"model": "prob_power", "n": -1}}"#).unwrap_err();
    assert!(e.contains("queue.n"), "{e}");
    let e = VenueModel::from_json(r#"{"feed_latency": {"model": "nope"}}"#).unwrap_err();
    assert!(e.contains("feed_latency"), "{e}");
    let e = VenueModel::from_json(r#"{"fees": {"maker_fee_bps": 1}}"#).unwrap_err();
    assert!(e.contains("fees") && e.contains("taker_fee_bps"), "{e}");
    let e = VenueModel::from_json(r#"{"queu": {}}"#).unwrap_err();
    assert!(e.contains("queu"), "{e}");
    let ok = VenueModel::from_json(
        r#"{"order_latency": {"model": "constant", "ns": 5}, "queue": {"model": "prob_log"}}"#,
    )
    .unwrap();
    assert_eq!(ok.queue, QueueModelConfig::ProbLog);
}
