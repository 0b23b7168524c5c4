//! The simulated venue a backtest executes strategy intents against, using the recorded market.
//! It runs inside the replay loop: after each guest call, [`Venue::on_batch`] walks the batch
//! the guests just saw (packed codec records, no envelope) with the decisions they made on it.
//!
//! - An intent reaches the venue `latency_ns` after the event that caused it (event time);
//!   with no latency it meets the market as that event left it.
//! - A market order fills in full at the opposite best of the latest top of book (quote, or
//!   book snapshot) known when it arrives; taker fee.
//! - A limit order that is marketable on arrival fills at the opposite best (taker); otherwise
//!   it rests and fills at its limit price once a recorded trade trades through it or the
//!   opposite best crosses it (maker fee).
//! - A cancel arrives `latency_ns` after the event that caused it, like an order, and removes
//!   the orders it names that were submitted before it; until then they can fill.
//!
//! Accounting is exact: prices and quantities at 9 decimals, cash at 18, in `i128`; positions,
//! cash, fees and turnover per instrument. Equity is marked after every event, each instrument
//! at its mark: the mid of a two-sided top of book, else the last recorded trade's price, else
//! the previous mark (never 0 for want of a quote); and
//! the maximum drawdown is tracked on that curve; the curve kept for reports is sampled at
//! every fill, at the last event, and either every `sample_every` events or (with
//! `equity_interval_ns`) at the first event of each interval. Instruments are the guests' ids
//! ([`crate::event::instrument_id`]); the table of the stream's symbols, read before the pass,
//! names them and orders the accounts (by symbol) so sums do not depend on ids.
//! With a [`VenueModel`] in the config, orders go through the realistic model (`exec.rs`,
//! `model.rs`) into the same accounts; without one, the plain venue is as it was.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tapedeck_guest::codec::{EventBatch, Payload};

use crate::decision::{Decision, Output};
use crate::equity_log::EquityLogWriter;
use crate::event::{OrderTypeName, SideName};
use crate::stats::{InstrumentEnd, Stats, StatsConfig, StatsTracker, Totals};
use exec::{Matcher, Order};
use market::{Market, Top};

mod book;
mod exec;
pub mod latency;
mod market;
mod model;
mod queue;
mod types;
pub use types::{FeeSchedule, FeeTier, Latency, QueueModelConfig, VenueConfig, VenueModel};

const SCALE: u8 = 9;
const E9: f64 = 1e9;
const E18: f64 = 1e18;

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

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EquityPoint {
    pub seq: u64,
    pub time_ns: i64,
    pub equity: f64,
    pub drawdown: f64,
}

/// What one strategy did on one stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    /// Funding received (negative: paid), with the model's `funding` on.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub funding: f64,
    #[serde(skip)]
    pub fills: Vec<Trade>,
    #[serde(skip)]
    pub equity: Vec<EquityPoint>,
    /// The backtest's statistics (not part of a regression's summary).
    #[serde(skip)]
    pub stats: Stats,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}
#[derive(Debug, Clone)]
struct Resting {
    order_seq: u64,
    client_order_id: u64,
    instrument: u32,
    buy: bool,
    price: i128,
    qty: i128,
    active_at: i64,
    market: bool,
}

/// One instrument's account: position at scale 9, money at scale 18.
#[derive(Debug, Default, Clone)]
struct Account {
    position: i128,
    cash: i128,
    fees: i128,
    turnover: i128,
    /// What the open position cost (signed like it), for realized PnL per closing fill.
    cost: i128,
    /// Whether a position was open after the last event, and the time one was open.
    open: bool,
    exposed_ns: i64,
    fills: u64,
    /// Funding received, scale 18.
    funding: i128,
}

fn to9(m: i64, s: u8) -> i128 {
    let m = m as i128;
    if s <= SCALE {
        m * 10i128.pow((SCALE - s) as u32)
    } else {
        m / 10i128.pow((s - SCALE) as u32)
    }
}

/// [`to9`] for decimals a guest wrote: `None` beyond the 18 places a stored decimal has.
fn to9_checked(d: crate::event::Dec) -> Option<i128> {
    (d.scale() <= 18).then(|| to9(d.0.mantissa, d.scale()))
}

/// The venue for one strategy on one stream, fed batch by batch.
#[derive(Debug)]
pub struct Venue {
    cfg: VenueConfig,
    /// The stream's instruments: guest id to symbol.
    symbols: BTreeMap<u32, String>,
    markets: Vec<(u32, Market)>,
    /// By symbol (then id): the order equity is summed in.
    accounts: Vec<(String, u32, Account)>,
    resting: Vec<Resting>,
    /// Cancels on their way: (arrival time, the cancel's seq, client order id).
    cancels: Vec<(i64, u64, u64)>,
    /// Events seen.
    n: u64,
    peak: f64,
    /// The last event's mark, and whether it was sampled.
    last: Option<(EquityPoint, bool)>,
    last_bucket: Option<i64>,
    stats: StatsTracker,
    perf: Performance,
    /// Every event's equity, when logged ([`Venue::log_equity`]).
    equity_log: Option<EquityLogWriter>,
    /// The realistic model, when the config has one.
    model: Option<Box<Matcher>>,
}

impl Venue {
    /// `symbols` maps the stream's guest instrument ids to their symbols.
    pub fn new(cfg: &VenueConfig, symbols: BTreeMap<u32, String>, stats: StatsConfig) -> Self {
        Venue {
            cfg: cfg.clone(),
            symbols,
            markets: Vec::new(),
            accounts: Vec::new(),
            resting: Vec::new(),
            cancels: Vec::new(),
            n: 0,
            peak: 0.0,
            last: None,
            last_bucket: None,
            stats: StatsTracker::new(stats),
            perf: Performance::default(),
            equity_log: None,
            model: cfg
                .model
                .as_ref()
                .map(|m| Box::new(Matcher::new(m, cfg.latency_ns))),
        }
    }

    /// Logs the equity after every event to `log` (for the drawdown of several streams'
    /// summed equity, [`crate::equity_log::combined_drawdown`]).
    pub fn log_equity(&mut self, log: EquityLogWriter) {
        self.equity_log = Some(log);
    }

    /// The equity log, to finish after the last batch.
    pub fn take_equity_log(&mut self) -> Option<EquityLogWriter> {
        self.equity_log.take()
    }

    fn top(&self, id: u32) -> Top {
        self.markets
            .iter()
            .find(|t| t.0 == id)
            .map_or(Top::default(), |t| t.1.top)
    }

    fn account(&mut self, id: u32) -> &mut Account {
        let i = match self.accounts.iter().position(|a| a.1 == id) {
            Some(i) => i,
            None => {
                let sym = self.symbols.get(&id).cloned().unwrap_or_default();
                let at = self
                    .accounts
                    .partition_point(|a| (a.0.as_str(), a.1) < (sym.as_str(), id));
                self.accounts.insert(at, (sym, id, Account::default()));
                at
            }
        };
        &mut self.accounts[i].2
    }

    /// One batch as the guests saw it, and the decisions this strategy made on it (in order).
    pub fn on_batch(&mut self, batch: &[u8], decisions: &[Decision]) {
        let Ok(events) = EventBatch::new(batch) else {
            return;
        };
        if self.model.is_some() {
            return self.on_batch_model(events, decisions);
        }
        let mut next = 0;
        let _ = events.for_each_event(|e| {
            let (id, seq, t) = (e.header.instrument, e.header.seq, e.header.time_ns);
            let s = e.header.px_scale;
            // 1. The market moves.
            let mut trade_px: Option<i128> = None;
            let new_top = match &e.payload {
                Payload::Quote(q) => Some(Top {
                    bid: Some(to9(q.bid_px, s)),
                    ask: Some(to9(q.ask_px, s)),
                }),
                Payload::BookSnapshot(b) => Some(Top {
                    bid: b.bids.iter().next().map(|l| to9(l.price, s)),
                    ask: b.asks.iter().next().map(|l| to9(l.price, s)),
                }),
                Payload::Trade(tr) => {
                    trade_px = Some(to9(tr.price, s));
                    None
                }
                _ => None,
            };
            market::move_market(&mut self.markets, id, new_top, trade_px);
            // 2. This event's decisions go out; they arrive `latency_ns` later.
            while next < decisions.len() && decisions[next].seq <= seq {
                self.place(&decisions[next], id);
                next += 1;
            }
            // 3. Orders that have arrived try to fill.
            let filled = self.match_orders(id, seq, t, trade_px);
            // 4. Mark to market.
            self.mark(seq, t, filled);
        });
        // Decisions for events past the batch cannot be (a guest names only its batch's seqs).
        for d in &decisions[next..] {
            self.perf.decisions += 1;
            if let Output::NewOrder { .. } = d.output {
                self.perf.orders += 1;
            }
        }
    }

    fn place(&mut self, d: &Decision, event_instrument: u32) {
        self.perf.decisions += 1;
        match &d.output {
            Output::NewOrder {
                instrument,
                client_order_id,
                side,
                order_type,
                tif,
                price,
                qty,
            } => {
                self.perf.orders += 1;
                // Decimals the store could not hold (more than 18 places) are not placed.
                let (Some(price), Some(qty)) = (to9_checked(*price), to9_checked(*qty)) else {
                    return;
                };
                let instrument = if self.symbols.contains_key(instrument) {
                    *instrument
                } else {
                    event_instrument
                };
                if let Some(m) = self.model.as_mut() {
                    let o = Order::new(
                        d.seq,
                        *client_order_id,
                        instrument,
                        *side == SideName::Buy,
                        price,
                        qty,
                        *order_type == OrderTypeName::Market,
                        *tif,
                    );
                    m.send(o, d.time_ns);
                    return;
                }
                self.resting.push(Resting {
                    order_seq: d.seq,
                    client_order_id: *client_order_id,
                    instrument,
                    buy: *side == SideName::Buy,
                    price,
                    qty,
                    active_at: d.time_ns + self.cfg.latency_ns,
                    market: *order_type == OrderTypeName::Market,
                });
            }
            Output::Cancel {
                client_order_id, ..
            } => match self.model.as_mut() {
                Some(m) => m.send_cancel(d.seq, *client_order_id, d.time_ns),
                None => {
                    self.cancels
                        .push((d.time_ns + self.cfg.latency_ns, d.seq, *client_order_id))
                }
            },
            Output::Log { .. } | Output::Metric { .. } => {}
        }
    }

    /// Fills what can fill at this event; whether anything did. An order never fills against
    /// the trade that caused it: it was not there yet.
    fn match_orders(&mut self, id: u32, seq: u64, t: i64, trade_px: Option<i128>) -> bool {
        // Cancels that have arrived go first (arrival times only grow: the latency is fixed).
        let arrived = self.cancels.partition_point(|c| c.0 <= t);
        for (_, cancel_seq, coid) in self.cancels.drain(..arrived) {
            self.resting
                .retain(|r| r.client_order_id != coid || r.order_seq > cancel_seq);
        }
        if self.resting.is_empty() {
            return false;
        }
        let top = self.top(id);
        let mut filled = false;
        let mut i = 0;
        while i < self.resting.len() {
            let o = &self.resting[i];
            if o.instrument != id || o.active_at > t {
                i += 1;
                continue;
            }
            let opposite = if o.buy { top.ask } else { top.bid };
            let fill = if o.market {
                opposite.map(|p| (p, "taker"))
            } else {
                let crosses_book =
                    opposite.is_some_and(|p| if o.buy { p <= o.price } else { p >= o.price });
                let crosses_trade = o.order_seq < seq
                    && trade_px.is_some_and(|p| if o.buy { p < o.price } else { p > o.price });
                (crosses_book || crosses_trade).then_some((o.price, "maker"))
            };
            let Some((px, liquidity)) = fill else {
                i += 1;
                continue;
            };
            let o = self.resting.remove(i);
            self.fill(o, px, liquidity, seq, t);
            filled = true;
        }
        filled
    }

    fn fill(&mut self, o: Resting, px: i128, liquidity: &'static str, seq: u64, t: i64) {
        let notional = px * o.qty; // scale 18
        let bps = self.fee_bps(o.instrument, liquidity == "maker");
        let f = (notional as f64 * bps / 1e4).round() as i128;
        if let Some(m) = self.markets.iter_mut().find(|m| m.0 == o.instrument)
            && m.1.mark.is_none()
        {
            m.1.mark = Some(px);
        }
        let acct = self.account(o.instrument);
        let sign = if o.buy { 1 } else { -1 };
        // The part that closes an open position realizes PnL against its average cost.
        let mut realized = None;
        let mut rest = o.qty;
        if acct.position != 0 && acct.position.signum() != sign {
            let close = rest.min(acct.position.abs());
            // cost × close / position without the product (scale 27) overflowing i128: the
            // same truncated quotient, as quotient and remainder.
            let p = acct.position.abs();
            let cost_closed = acct.cost / p * close + acct.cost % p * close / p;
            realized = Some(acct.position.signum() * close * px - cost_closed);
            acct.cost -= cost_closed;
            rest -= close;
        }
        acct.cost += sign * rest * px;
        acct.position += sign * o.qty;
        acct.cash -= sign * notional + f;
        acct.fees += f;
        acct.turnover += notional;
        acct.fills += 1;
        let symbol = self.symbols.get(&o.instrument).cloned().unwrap_or_default();
        if let Some(r) = realized {
            self.stats.closed(&symbol, r as f64 / E18);
        }
        self.perf.trades += 1;
        self.perf.fills.push(Trade {
            seq,
            time_ns: t,
            order_seq: o.order_seq,
            client_order_id: o.client_order_id,
            instrument: symbol,
            side: if o.buy { "buy".into() } else { "sell".into() },
            price: px as f64 / E9,
            qty: o.qty as f64 / E9,
            fee: f as f64 / E18,
            liquidity,
        });
    }

    /// The instrument's mark; 0 before any price is known (no position is open then: a fill
    /// with no mark yet sets it to its price).
    fn mark_price(&self, id: u32) -> i128 {
        self.markets
            .iter()
            .find(|x| x.0 == id)
            .and_then(|x| x.1.mark)
            .unwrap_or(0)
    }

    fn mark(&mut self, seq: u64, t: i64, filled: bool) {
        // Time since the last event counts as exposure where a position was open through it.
        let dt = self.last.map_or(0, |(p, _)| t - p.time_ns);
        let mut exposed = false;
        for a in self.accounts.iter_mut() {
            if a.2.open {
                a.2.exposed_ns += dt;
                exposed = true;
            }
        }
        let equity: f64 = self
            .accounts
            .iter()
            .map(|(_, id, a)| (a.cash + a.position * self.mark_price(*id)) as f64 / E18)
            .sum();
        self.stats.mark(t, equity, exposed, dt);
        if let Some(log) = &mut self.equity_log {
            log.push(t, equity);
        }
        for a in self.accounts.iter_mut() {
            // Open after this event: the time until the next one is exposed.
            a.2.open = a.2.position != 0;
        }
        self.peak = self.peak.max(equity);
        self.perf.max_drawdown = self.perf.max_drawdown.max(self.peak - equity);
        let point = EquityPoint {
            seq,
            time_ns: t,
            equity,
            drawdown: self.peak - equity,
        };
        let periodic = match self.cfg.equity_interval_ns {
            Some(every) => {
                let bucket = t.div_euclid(every.max(1));
                let new = self.last_bucket != Some(bucket);
                self.last_bucket = Some(bucket);
                new
            }
            None => self.n.is_multiple_of(self.cfg.sample_every.max(1)),
        };
        let sampled = filled || periodic;
        if sampled {
            self.perf.equity.push(point);
        }
        self.last = Some((point, sampled));
        self.perf.pnl = equity;
        self.n += 1;
    }

    /// A symbol first seen after the venue started (live streams learn theirs as they go).
    pub fn add_symbol(&mut self, id: u32, symbol: &str) {
        self.symbols.entry(id).or_insert_with(|| symbol.to_string());
    }

    /// The fills since the last call (a live session records them as they happen and keeps
    /// none).
    pub fn take_fills(&mut self) -> Vec<Trade> {
        std::mem::take(&mut self.perf.fills)
    }

    /// Each instrument's mark now, by symbol (instruments with no price yet left out).
    pub fn marks(&self) -> BTreeMap<String, f64> {
        self.markets
            .iter()
            .filter_map(|(id, m)| Some((self.symbols.get(id)?.clone(), m.mark? as f64 / E9)))
            .collect()
    }

    /// When the orders sent in the last batch arrive at the venue model, by client order id
    /// (empty on the plain venue, whose orders all take the base latency).
    pub fn take_arrivals(&mut self) -> BTreeMap<u64, i64> {
        self.model
            .as_mut()
            .map(|m| std::mem::take(&mut m.arrivals).into_iter().collect())
            .unwrap_or_default()
    }

    /// Equity now (cash plus positions at the mid), in quote units.
    pub fn pnl(&self) -> f64 {
        self.perf.pnl
    }

    /// The equity samples since the last call (a backtest writes them as they come). The
    /// last event's sample, if not taken yet, comes with [`Venue::finish`].
    pub fn take_equity(&mut self) -> Vec<EquityPoint> {
        std::mem::take(&mut self.perf.equity)
    }

    /// What the strategy did on the stream: the figures, and the fills and equity samples not
    /// taken yet.
    pub fn finish(mut self) -> Performance {
        // The last event is always sampled.
        if let Some((p, false)) = self.last {
            self.perf.equity.push(p);
        }
        self.perf.fees = self.accounts.iter().map(|a| a.2.fees as f64 / E18).sum();
        self.perf.turnover = self
            .accounts
            .iter()
            .map(|a| a.2.turnover as f64 / E18)
            .sum();
        self.perf.open_orders = match &self.model {
            Some(m) => m.open_orders() as u64,
            None => self.resting.len() as u64,
        };
        self.perf.funding = self.accounts.iter().map(|a| a.2.funding as f64 / E18).sum();
        let ends: Vec<InstrumentEnd> = self
            .accounts
            .iter()
            .map(|(sym, id, a)| InstrumentEnd {
                symbol: sym.clone(),
                pnl: (a.cash + a.position * self.mark_price(*id)) as f64 / E18,
                fees: a.fees as f64 / E18,
                turnover: a.turnover as f64 / E18,
                position: a.position as f64 / E9,
                exposure_ns: a.exposed_ns,
                fills: a.fills,
            })
            .collect();
        let totals = Totals {
            pnl: self.perf.pnl,
            fees: self.perf.fees,
            turnover: self.perf.turnover,
        };
        self.perf.stats = self.stats.finish(&totals, &ends);
        self.perf
    }
}

mod simulate;
pub use simulate::simulate;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_model;
