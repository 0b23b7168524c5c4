//! The simulated venue a backtest executes strategy intents against, using the recorded market.
//!
//! - An intent reaches the venue `latency_ns` after the event that caused it (event time);
//!   with no latency it meets the market as that event left it.
//! - A market order fills in full at the opposite best of the latest top of book (quote, or
//!   book snapshot/delta) known when it arrives; taker fee.
//! - A limit order that is marketable on arrival fills at the opposite best (taker); otherwise
//!   it rests and fills at its limit price once a recorded trade trades through it or the
//!   opposite best crosses it (maker fee).
//! - A cancel removes the resting order when it arrives.
//!
//! Accounting is exact: prices and quantities at 9 decimals, cash at 18, in `i128`; positions,
//! cash, fees and turnover per instrument. Equity is marked at the mid after every event, and
//! the maximum drawdown is tracked on that curve; the curve kept for reports is sampled at
//! every fill and every `sample_every` events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::decision::{Decision, Output};
use crate::event::{Body, Dec, Envelope, OrderTypeName, SideName};

const SCALE: u8 = 9;
const E9: f64 = 1e9;
const E18: f64 = 1e18;

/// Venue settings; part of the run card.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VenueConfig {
    pub latency_ns: i64,
    pub maker_fee_bps: f64,
    pub taker_fee_bps: f64,
    /// Keep an equity sample every this many events (and at every fill).
    pub sample_every: u64,
}

impl Default for VenueConfig {
    fn default() -> Self {
        VenueConfig {
            latency_ns: 0,
            maker_fee_bps: 1.0,
            taker_fee_bps: 5.0,
            sample_every: 1000,
        }
    }
}

/// A simulated execution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trade {
    /// The event at which it happened.
    pub seq: u64,
    pub time_ns: i64,
    /// The decision (order) it fills.
    pub order_seq: u64,
    pub client_order_id: u64,
    pub instrument: String,
    pub side: String,
    pub price: f64,
    pub qty: f64,
    pub fee: f64,
    pub liquidity: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EquityPoint {
    pub seq: u64,
    pub time_ns: i64,
    pub equity: f64,
    pub drawdown: f64,
}

/// What one strategy did on one stream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Performance {
    pub decisions: u64,
    pub orders: u64,
    pub trades: u64,
    pub pnl: f64,
    pub max_drawdown: f64,
    pub fees: f64,
    pub turnover: f64,
    /// Orders still resting at the end.
    pub open_orders: u64,
    #[serde(skip)]
    pub fills: Vec<Trade>,
    #[serde(skip)]
    pub equity: Vec<EquityPoint>,
}

#[derive(Debug, Clone)]
struct Resting {
    order_seq: u64,
    client_order_id: u64,
    instrument: String,
    buy: bool,
    price: i128,
    qty: i128,
    active_at: i64,
    market: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Top {
    bid: Option<i128>,
    ask: Option<i128>,
}

#[derive(Debug, Default, Clone)]
struct Account {
    position: i128,
    cash: i128,
    fees: i128,
    turnover: i128,
}

fn to9(d: Dec) -> i128 {
    let s = d.scale();
    let m = d.0.mantissa as i128;
    if s <= SCALE {
        m * 10i128.pow((SCALE - s) as u32)
    } else {
        m / 10i128.pow((s - SCALE) as u32)
    }
}

/// [`to9`] for decimals a guest wrote: `None` beyond the 18 places a stored decimal has.
fn to9_checked(d: Dec) -> Option<i128> {
    (d.scale() <= 18).then(|| to9(d))
}

/// Runs the venue over one stream's events and one strategy's decisions on it.
/// `instruments` maps guest instrument ids back to symbols.
pub fn simulate(
    events: &[Envelope],
    decisions: &[Decision],
    instruments: &BTreeMap<u32, String>,
    cfg: &VenueConfig,
) -> Performance {
    let mut perf = Performance {
        decisions: decisions.len() as u64,
        ..Default::default()
    };
    let mut tops: BTreeMap<String, Top> = BTreeMap::new();
    let mut accounts: BTreeMap<String, Account> = BTreeMap::new();
    let mut resting: Vec<Resting> = Vec::new();
    let mut next_decision = 0;
    let (mut peak, mut max_dd) = (0f64, 0f64);
    let fee = |notional: i128, bps: f64| -> i128 { (notional as f64 * bps / 1e4).round() as i128 };

    for (n, e) in events.iter().enumerate() {
        let sym = e.instrument.clone().unwrap_or_default();
        // 1. The market moves.
        let mut trade_px: Option<i128> = None;
        match &e.body {
            Body::Quote { bid_px, ask_px, .. } => {
                tops.insert(
                    sym.clone(),
                    Top {
                        bid: Some(to9(*bid_px)),
                        ask: Some(to9(*ask_px)),
                    },
                );
            }
            Body::BookSnapshot { bids, asks, .. } => {
                tops.insert(
                    sym.clone(),
                    Top {
                        bid: bids.first().map(|l| to9(l[0])),
                        ask: asks.first().map(|l| to9(l[0])),
                    },
                );
            }
            Body::Trade { price, .. } => trade_px = Some(to9(*price)),
            _ => {}
        }
        // 2. This event's decisions go out; they arrive `latency_ns` later (at once with none).
        while next_decision < decisions.len() && decisions[next_decision].seq <= e.seq {
            let d = &decisions[next_decision];
            next_decision += 1;
            match &d.output {
                Output::NewOrder {
                    instrument,
                    client_order_id,
                    side,
                    order_type,
                    price,
                    qty,
                    ..
                } => {
                    perf.orders += 1;
                    // Decimals the store could not hold (more than 18 places) are not placed.
                    let (Some(price), Some(qty)) = (to9_checked(*price), to9_checked(*qty)) else {
                        continue;
                    };
                    resting.push(Resting {
                        order_seq: d.seq,
                        client_order_id: *client_order_id,
                        instrument: instruments
                            .get(instrument)
                            .cloned()
                            .unwrap_or_else(|| sym.clone()),
                        buy: *side == SideName::Buy,
                        price,
                        qty,
                        active_at: d.time_ns + cfg.latency_ns,
                        market: *order_type == OrderTypeName::Market,
                    });
                }
                Output::Cancel {
                    client_order_id, ..
                } => resting.retain(|r| r.client_order_id != *client_order_id),
                Output::Log { .. } | Output::Metric { .. } => {}
            }
        }
        // 3. Orders that have arrived try to fill. An order never fills against the trade that
        //    caused it: it was not there yet.
        let top = tops.get(&sym).copied().unwrap_or_default();
        let mut i = 0;
        while i < resting.len() {
            let o = &resting[i];
            if o.instrument != sym || o.active_at > e.occurred_at {
                i += 1;
                continue;
            }
            let opposite = if o.buy { top.ask } else { top.bid };
            let (fill_px, liquidity) = if o.market {
                match opposite {
                    Some(p) => (Some(p), "taker"),
                    None => (None, "taker"),
                }
            } else {
                let crosses_book =
                    opposite.is_some_and(|p| if o.buy { p <= o.price } else { p >= o.price });
                let crosses_trade = o.order_seq < e.seq
                    && trade_px.is_some_and(|p| if o.buy { p < o.price } else { p > o.price });
                if crosses_book || crosses_trade {
                    (Some(o.price), "maker")
                } else {
                    (None, "maker")
                }
            };
            let Some(px) = fill_px else {
                i += 1;
                continue;
            };
            let o = resting.remove(i);
            let notional = px * o.qty; // scale 18
            let f = fee(
                notional,
                if liquidity == "taker" {
                    cfg.taker_fee_bps
                } else {
                    cfg.maker_fee_bps
                },
            );
            let acct = accounts.entry(o.instrument.clone()).or_default();
            let sign = if o.buy { 1 } else { -1 };
            acct.position += sign * o.qty;
            acct.cash -= sign * notional + f;
            acct.fees += f;
            acct.turnover += notional;
            perf.trades += 1;
            perf.fills.push(Trade {
                seq: e.seq,
                time_ns: e.occurred_at,
                order_seq: o.order_seq,
                client_order_id: o.client_order_id,
                instrument: o.instrument,
                side: if o.buy { "buy".into() } else { "sell".into() },
                price: px as f64 / E9,
                qty: o.qty as f64 / E9,
                fee: f as f64 / E18,
                liquidity,
            });
        }
        // 4. Mark to market.
        let equity: f64 = accounts
            .iter()
            .map(|(s, a)| {
                let mid = tops
                    .get(s)
                    .and_then(|t| Some((t.bid? + t.ask?) / 2))
                    .unwrap_or(0);
                (a.cash + a.position * mid) as f64 / E18
            })
            .sum();
        peak = peak.max(equity);
        max_dd = max_dd.max(peak - equity);
        let filled_now = perf.fills.last().is_some_and(|t| t.seq == e.seq);
        if filled_now || (n as u64).is_multiple_of(cfg.sample_every.max(1)) || n + 1 == events.len()
        {
            perf.equity.push(EquityPoint {
                seq: e.seq,
                time_ns: e.occurred_at,
                equity,
                drawdown: peak - equity,
            });
        }
        perf.pnl = equity;
    }
    perf.max_drawdown = max_dd;
    perf.fees = accounts.values().map(|a| a.fees as f64 / E18).sum();
    perf.turnover = accounts.values().map(|a| a.turnover as f64 / E18).sum();
    perf.open_orders = resting.len() as u64;
    perf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::TifName;

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
}
