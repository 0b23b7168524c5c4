//! Reconciliation of a live session with its replay (`tapedeck reconcile`): the strategy the
//! session ran is replayed on the market data stream of each live exec stream
//! (`exec:<venue>:<symbol>` ↔ `md:<venue>:<symbol>`, else the one `md:*:<symbol>`) through
//! the venue model, and each live
//! fill is paired with its simulated counterpart by client order id (a guest's ids come from
//! the seq of the event that caused the order, so the replay names its orders as the session
//! did). Fills of one order are taken together (total quantity, average price, first time,
//! fees).
//!
//! Reported: per trade the time, price, quantity and fee differences; the signed slippage
//! (live worse than simulated is positive: paid more on a buy, got less on a sell) and its
//! distribution; the fill rate of limit orders live and simulated; the order latency
//! (submitted → acked) the exec streams recorded; and the PnL gap.
//!
//! The PnL gap is the live session's PnL less the replay's over the window: each side's fills
//! marked at the market's mark at the window's end (the venue's: the mid, else the last
//! trade), less fees. Per order, with `q` the quantity both sides filled, it splits exactly
//! into
//! - fees: the simulated fees less the live ones;
//! - latency: `q` at the simulated price rather than the live one (where the order met the
//!   market), and for market orders the quantity filled on one side only (the book it met);
//! - queue: for limit orders, the quantity filled on one side only (a limit order fills at its
//!   price either way; whether and how much it fills is the queue's doing),
//!
//! so `latency + queue + fees = live − sim`. Orders filled on one side only are counted.
//!
//! Only the live window counts: simulated fills between the first and last event of the exec
//! stream (the replay stops there).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::decision::Decision;
use crate::error::Result;
use crate::event::{Body, LiquidityName, OrderTypeName, SideName};
use crate::replay::{BatchObserver, Plugin, Point, ReplayOptions, replay_observed};
use crate::runtime::Runtime;
use crate::stats::StatsConfig;
use crate::store::{EventSource, SeqRange};
use crate::venue::latency::quantiles;
use crate::venue::{Trade, Venue, VenueConfig};

/// One order's fills, taken together (all zero: none).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct OrderFills {
    pub time_ns: i64,
    pub price: f64,
    pub qty: f64,
    pub fee: f64,
    pub maker: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PairedTrade {
    pub stream: String,
    pub client_order_id: u64,
    pub side: String,
    pub live: OrderFills,
    pub sim: OrderFills,
    /// live − sim.
    pub time_diff_ns: i64,
    pub price_diff: f64,
    pub qty_diff: f64,
    pub fee_diff: f64,
    /// Signed: positive when live is worse (a buy paid more, a sell got less).
    pub slippage: f64,
    pub slippage_bps: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Distribution {
    pub count: usize,
    pub mean: f64,
    pub p5: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p95: f64,
}

impl Distribution {
    pub fn of(mut v: Vec<f64>) -> Self {
        if v.is_empty() {
            return Distribution::default();
        }
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        Distribution {
            count: v.len(),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            p5: q(0.05),
            p25: q(0.25),
            p50: q(0.5),
            p75: q(0.75),
            p95: q(0.95),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct FillRate {
    pub limit_orders: u64,
    pub filled: u64,
    pub rate: f64,
}

/// The PnL gap (live − simulated) and where it comes from (see the module doc).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct PnlGap {
    /// The live session's PnL over the window: its fills marked at the window's end, less fees.
    pub live: f64,
    /// The replay's, the same way.
    pub sim: f64,
    /// `live − sim` = `fees + latency + queue`.
    pub total: f64,
    /// Simulated fees less live fees.
    pub fees: f64,
    /// Paired quantity at the live price rather than the simulated one, and market orders'
    /// quantity filled on one side only.
    pub latency: f64,
    /// Limit orders' quantity filled on one side only.
    pub queue: f64,
    /// Orders filled live only / in the replay only.
    pub live_only_orders: u64,
    pub sim_only_orders: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReconcileReport {
    pub exec_streams: Vec<String>,
    /// The mark each exec stream's fills are valued at: its market's at the window's end.
    pub marks: BTreeMap<String, f64>,
    pub trades: Vec<PairedTrade>,
    pub slippage: Distribution,
    pub slippage_bps: Distribution,
    pub fill_time_diff_ns: Distribution,
    /// Submitted → acked, from the exec streams.
    pub order_latency_ns: Distribution,
    pub live_fill_rate: FillRate,
    pub sim_fill_rate: FillRate,
    pub pnl_gap: PnlGap,
}

/// One fill: (time, price, qty, fee, maker).
pub type FillRow = (i64, f64, f64, f64, bool);

/// Fills by client order id, with the order's side.
pub type FillsByOrder = BTreeMap<u64, (SideName, Vec<FillRow>)>;

/// What a live exec stream recorded.
#[derive(Debug, Default)]
pub struct LiveSession {
    pub first_ns: i64,
    pub last_ns: i64,
    pub fills: FillsByOrder,
    /// The client order ids of its limit orders.
    pub limits: BTreeSet<u64>,
    pub limit_orders: u64,
    pub limit_filled: u64,
    pub ack_latency_ns: Vec<i64>,
}

/// Reads one exec stream.
pub fn read_live(source: &dyn EventSource, key: &str) -> Result<LiveSession> {
    let mut s = LiveSession {
        first_ns: i64::MAX,
        last_ns: i64::MIN,
        ..Default::default()
    };
    let mut sent: BTreeMap<u64, (i64, bool)> = BTreeMap::new();
    source.read(key, SeqRange::ALL, &mut |e| {
        s.first_ns = s.first_ns.min(e.occurred_at);
        s.last_ns = s.last_ns.max(e.occurred_at);
        match &e.body {
            Body::OrderSubmitted {
                client_order_id,
                order_type,
                ..
            } => {
                let limit = *order_type == OrderTypeName::Limit;
                sent.insert(*client_order_id, (e.occurred_at, limit));
                if limit {
                    s.limit_orders += 1;
                    s.limits.insert(*client_order_id);
                }
            }
            Body::OrderAcked {
                client_order_id, ..
            } => {
                if let Some((t, _)) = sent.get(client_order_id) {
                    s.ack_latency_ns.push(e.occurred_at - t);
                }
            }
            Body::Fill {
                client_order_id,
                side,
                liquidity,
                price,
                qty,
                fee,
                ..
            } => {
                let entry = s
                    .fills
                    .entry(*client_order_id)
                    .or_insert_with(|| (*side, Vec::new()));
                if entry.1.is_empty() && sent.get(client_order_id).is_some_and(|x| x.1) {
                    s.limit_filled += 1;
                }
                entry.1.push((
                    e.occurred_at,
                    price.to_f64(),
                    qty.to_f64(),
                    fee.to_f64(),
                    *liquidity == Some(LiquidityName::Maker),
                ));
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(s)
}

/// The market data stream of an exec stream: `exec:<rest>` → `md:<rest>`.
pub fn market_stream(exec: &str) -> String {
    match exec.strip_prefix("exec:") {
        Some(rest) => format!("md:{rest}"),
        None => exec.to_string(),
    }
}

/// The market data stream of an exec stream in `keys` (the store's streams): `md:<rest>` if
/// there is one, else the one `md:*:<symbol>` (a live session's paper venue records
/// `exec:paper:<symbol>` beside the feed's `md:<feed>:<symbol>`); `None` if neither is.
pub fn find_market_stream(exec: &str, keys: &[String]) -> Option<String> {
    let same = market_stream(exec);
    if keys.contains(&same) {
        return Some(same);
    }
    let symbol = exec.rsplit(':').next()?;
    let mut it = keys
        .iter()
        .filter(|k| k.starts_with("md:") && k.rsplit(':').next() == Some(symbol));
    match (it.next(), it.next()) {
        (Some(k), None) => Some(k.clone()),
        _ => None,
    }
}

struct Sim {
    venue: Venue,
    fills: Vec<Trade>,
    /// Every order: (client order id, sent at, limit).
    orders: Vec<(u64, i64, bool)>,
}

impl BatchObserver for Sim {
    fn on_batch(&mut self, batch: &[u8], decisions: &[Vec<Decision>]) {
        for d in &decisions[0] {
            if let crate::decision::Output::NewOrder {
                order_type,
                client_order_id,
                ..
            } = d.output
            {
                let limit = order_type == OrderTypeName::Limit;
                self.orders.push((client_order_id, d.time_ns, limit));
            }
        }
        self.venue.on_batch(batch, &decisions[0]);
        self.fills.extend(self.venue.take_fills());
    }
}

fn together(fills: &[FillRow]) -> OrderFills {
    let qty: f64 = fills.iter().map(|f| f.2).sum();
    let notional: f64 = fills.iter().map(|f| f.1 * f.2).sum();
    OrderFills {
        time_ns: fills.iter().map(|f| f.0).min().unwrap_or(0),
        price: if qty > 0.0 { notional / qty } else { 0.0 },
        qty,
        fee: fills.iter().map(|f| f.3).sum(),
        maker: fills.first().is_some_and(|f| f.4),
    }
}

/// A replay of a live window.
#[derive(Debug, Default)]
pub struct SimWindow {
    pub fills: FillsByOrder,
    pub fill_rate: FillRate,
    /// The orders sent in the window: client order id → (sent at, limit).
    pub orders: BTreeMap<u64, (i64, bool)>,
    /// Each instrument's mark at the window's end, by symbol.
    pub marks: BTreeMap<String, f64>,
}

/// The replay of `strategy` on `market` up to `window.1` (event time, inclusive), with the
/// fills and orders in `[window.0, window.1]`.
pub fn simulate_window(
    rt: &Runtime,
    source: &dyn EventSource,
    strategy: &Plugin,
    venue: &VenueConfig,
    market: &str,
    window: (i64, i64),
) -> Result<SimWindow> {
    let keys = [market.to_string()];
    let opts = ReplayOptions {
        to: Some(Point::Time(window.1)),
        ..ReplayOptions::default()
    };
    let run = replay_observed(
        rt,
        source,
        std::slice::from_ref(strategy),
        &opts,
        Some(&keys),
        &|_, symbols| {
            Ok(Sim {
                venue: Venue::new(venue, symbols.clone(), StatsConfig::default()),
                fills: Vec::new(),
                orders: Vec::new(),
            })
        },
    )?;
    let mut out = SimWindow::default();
    let in_window = |t: i64| t >= window.0 && t <= window.1;
    for (_, mut sim) in run {
        sim.fills.extend(sim.venue.take_fills());
        for f in sim.fills.iter().filter(|f| in_window(f.time_ns)) {
            let side = if f.side == "buy" {
                SideName::Buy
            } else {
                SideName::Sell
            };
            out.fills
                .entry(f.client_order_id)
                .or_insert_with(|| (side, Vec::new()))
                .1
                .push((f.time_ns, f.price, f.qty, f.fee, f.liquidity == "maker"));
        }
        for (coid, t, limit) in sim.orders.into_iter().filter(|o| in_window(o.1)) {
            out.orders.insert(coid, (t, limit));
            if limit {
                out.fill_rate.limit_orders += 1;
                out.fill_rate.filled += u64::from(out.fills.contains_key(&coid));
            }
        }
        out.marks.extend(sim.venue.marks());
    }
    out.fill_rate.rate = out.fill_rate.filled as f64 / out.fill_rate.limit_orders.max(1) as f64;
    Ok(out)
}

/// What one order made over the window, marked at `mark`: `sign × qty × (mark − price) − fee`.
fn order_pnl(sign: f64, f: &OrderFills, mark: f64) -> f64 {
    sign * f.qty * (mark - f.price) - f.fee
}

/// Adds one order's part of the gap (`l`, `s`: its live and simulated fills, zero if none).
fn attribute(gap: &mut PnlGap, sign: f64, limit: bool, l: &OrderFills, s: &OrderFills, mark: f64) {
    let q = l.qty.min(s.qty);
    gap.live += order_pnl(sign, l, mark);
    gap.sim += order_pnl(sign, s, mark);
    gap.fees -= l.fee - s.fee;
    gap.latency += sign * q * (s.price - l.price);
    let one_side = sign * (l.qty - q) * (mark - l.price) - sign * (s.qty - q) * (mark - s.price);
    if limit {
        gap.queue += one_side;
    } else {
        gap.latency += one_side;
    }
}

/// Reconciles the exec streams `exec_keys` with replays of `strategy` through `venue`.
pub fn reconcile(
    rt: &Runtime,
    source: &dyn EventSource,
    exec_keys: &[String],
    strategy: &Plugin,
    venue: &VenueConfig,
) -> Result<ReconcileReport> {
    let mut trades = Vec::new();
    let mut latency = Vec::new();
    let (mut live_rate, mut sim_rate) = (FillRate::default(), FillRate::default());
    let mut gap = PnlGap::default();
    let mut marks = BTreeMap::new();
    let all: Vec<String> = source.streams()?.into_iter().map(|s| s.key).collect();
    for key in exec_keys {
        let live = read_live(source, key)?;
        latency.extend(live.ack_latency_ns.iter().copied());
        let market = find_market_stream(key, &all).ok_or_else(|| {
            crate::error::Error::message(
                format!("reconcile {key}"),
                "no market data stream for it (want md:<venue>:<symbol>, or one md:*:<symbol>)",
            )
        })?;
        live_rate.limit_orders += live.limit_orders;
        live_rate.filled += live.limit_filled;
        let sim = simulate_window(
            rt,
            source,
            strategy,
            venue,
            &market,
            (live.first_ns, live.last_ns),
        )?;
        sim_rate.limit_orders += sim.fill_rate.limit_orders;
        sim_rate.filled += sim.fill_rate.filled;
        let symbol = key.rsplit(':').next().unwrap_or_default();
        let mark = match (sim.marks.get(symbol), sim.marks.len()) {
            (Some(m), _) => *m,
            (None, 1) => *sim.marks.values().next().expect("one mark"),
            _ => {
                return Err(crate::error::Error::message(
                    format!("reconcile {key}"),
                    format!("{market} has no price of {symbol} by the window's end"),
                ));
            }
        };
        marks.insert(key.clone(), mark);
        let ids: BTreeSet<u64> = live.fills.keys().chain(sim.fills.keys()).copied().collect();
        for coid in ids {
            let (lf, sf) = (live.fills.get(&coid), sim.fills.get(&coid));
            let side = lf.or(sf).expect("filled on one side").0;
            let sign = if side == SideName::Buy { 1.0 } else { -1.0 };
            let limit = live.limits.contains(&coid) || sim.orders.get(&coid).is_some_and(|o| o.1);
            let l = lf.map_or_else(OrderFills::default, |f| together(&f.1));
            let s = sf.map_or_else(OrderFills::default, |f| together(&f.1));
            attribute(&mut gap, sign, limit, &l, &s, mark);
            if lf.is_none() {
                gap.sim_only_orders += 1;
                continue;
            }
            if sf.is_none() {
                gap.live_only_orders += 1;
                continue;
            }
            let slippage = sign * (l.price - s.price);
            trades.push(PairedTrade {
                stream: key.clone(),
                client_order_id: coid,
                side: if side == SideName::Buy { "buy" } else { "sell" }.into(),
                time_diff_ns: l.time_ns - s.time_ns,
                price_diff: l.price - s.price,
                qty_diff: l.qty - s.qty,
                fee_diff: l.fee - s.fee,
                slippage,
                slippage_bps: if s.price != 0.0 {
                    slippage / s.price * 1e4
                } else {
                    0.0
                },
                live: l,
                sim: s,
            });
        }
    }
    gap.total = gap.live - gap.sim;
    for r in [&mut live_rate, &mut sim_rate] {
        r.rate = r.filled as f64 / r.limit_orders.max(1) as f64;
    }
    Ok(ReconcileReport {
        exec_streams: exec_keys.to_vec(),
        marks,
        slippage: Distribution::of(trades.iter().map(|t| t.slippage).collect()),
        slippage_bps: Distribution::of(trades.iter().map(|t| t.slippage_bps).collect()),
        fill_time_diff_ns: Distribution::of(trades.iter().map(|t| t.time_diff_ns as f64).collect()),
        order_latency_ns: Distribution::of(latency.iter().map(|l| *l as f64).collect()),
        trades,
        live_fill_rate: live_rate,
        sim_fill_rate: sim_rate,
        pnl_gap: gap,
    })
}

/// `--fit`: a venue model calibrated from the session — order latency from its submitted →
/// acked pairs, feed latency from the market streams' events, and the queue model (of
/// `candidates`) whose simulated limit-order fill rate is nearest the live one.
pub fn fit(
    rt: &Runtime,
    source: &dyn EventSource,
    exec_keys: &[String],
    strategy: &Plugin,
    base: &VenueConfig,
    candidates: &[crate::venue::QueueModelConfig],
) -> Result<crate::venue::VenueModel> {
    use crate::venue::{Latency, VenueModel};
    let mut model: VenueModel = base.model.clone().unwrap_or_default();
    let mut acks = Vec::new();
    let (mut live_orders, mut live_filled) = (0u64, 0u64);
    let mut sessions = Vec::new();
    let all: Vec<String> = source.streams()?.into_iter().map(|s| s.key).collect();
    for key in exec_keys {
        let live = read_live(source, key)?;
        acks.extend(live.ack_latency_ns.iter().copied());
        live_orders += live.limit_orders;
        live_filled += live.limit_filled;
        let market = find_market_stream(key, &all).unwrap_or_else(|| market_stream(key));
        sessions.push((market, (live.first_ns, live.last_ns)));
    }
    let q = quantiles(acks);
    if !q.is_empty() {
        model.order_latency = Some(Latency::Empirical { quantiles_ns: q });
    }
    let markets: Vec<String> = sessions.iter().map(|s| s.0.clone()).collect();
    let feed = quantiles(crate::venue::latency::feed_samples(source, &markets)?);
    if !feed.is_empty() {
        model.feed_latency = Some(Latency::Empirical { quantiles_ns: feed });
    }
    let live_rate = live_filled as f64 / live_orders.max(1) as f64;
    let mut best: Option<(f64, crate::venue::QueueModelConfig)> = None;
    for c in candidates {
        let cfg = VenueConfig {
            model: Some(VenueModel {
                queue: c.clone(),
                ..model.clone()
            }),
            ..base.clone()
        };
        let (mut orders, mut filled) = (0, 0);
        for (market, window) in &sessions {
            let r = simulate_window(rt, source, strategy, &cfg, market, *window)?.fill_rate;
            orders += r.limit_orders;
            filled += r.filled;
        }
        let err = (filled as f64 / orders.max(1) as f64 - live_rate).abs();
        if best.as_ref().is_none_or(|b| err < b.0) {
            best = Some((err, c.clone()));
        }
    }
    if let Some((_, q)) = best {
        model.queue = q;
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_market_stream_of_an_exec_stream() {
        let keys: Vec<String> = ["md:sim:X", "md:feed:Y", "md:a:Z", "md:b:Z", "exec:paper:Y"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            find_market_stream("exec:sim:X", &keys).as_deref(),
            Some("md:sim:X")
        );
        // A paper venue's exec stream beside the feed's market data.
        assert_eq!(
            find_market_stream("exec:paper:Y", &keys).as_deref(),
            Some("md:feed:Y")
        );
        // Two candidates: none chosen.
        assert_eq!(find_market_stream("exec:paper:Z", &keys), None);
        assert_eq!(find_market_stream("exec:paper:W", &keys), None);
    }
}
