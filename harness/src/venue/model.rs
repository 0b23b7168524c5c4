//! The venue's realistic path ([`super::types::VenueModel`]): each batch through the model's
//! matcher (`exec.rs`), fills into the same accounts as the plain venue's, fees from the
//! model's schedules, funding at recorded funding events.

use tapedeck_guest::codec::{EventBatch, Payload};

use super::exec::Exec;
use super::market::{self, Top};
use super::{E18, Resting, Venue, to9};
use crate::decision::{Decision, Output};

impl Venue {
    /// [`Venue::on_batch`] through the realistic model.
    pub(super) fn on_batch_model(&mut self, events: EventBatch<'_>, decisions: &[Decision]) {
        // Arrivals are kept for one batch (a live session takes them after each).
        self.model.as_mut().expect("a model").arrivals.clear();
        let mut next = 0;
        let funding = self.cfg.model.as_ref().is_some_and(|m| m.funding);
        let _ = events.for_each_event(|e| {
            let (id, seq, t) = (e.header.instrument, e.header.seq, e.header.time_ns);
            let (s, qs) = (e.header.px_scale, e.header.qty_scale);
            let model = self.model.as_mut().expect("a model");
            // 1. What arrived before this event meets the book as it was; then the market
            // moves and resting orders fill.
            model.arrive(t, false);
            model.on_market(id, t, &e.payload, s, qs);
            let mut trade_px = None;
            let new_top = match &e.payload {
                Payload::Quote(q) => Some(Top {
                    bid: Some(to9(q.bid_px, s)),
                    ask: Some(to9(q.ask_px, s)),
                }),
                Payload::BookSnapshot(_) | Payload::BookDelta(_) => {
                    model.top(id).map(|(bid, ask)| Top { bid, ask })
                }
                Payload::Trade(tr) => {
                    trade_px = Some(to9(tr.price, s));
                    None
                }
                Payload::Funding(f) if funding => {
                    self.pay_funding(id, f, s);
                    None
                }
                _ => None,
            };
            market::move_market(&mut self.markets, id, new_top, trade_px);
            // 2. This event's decisions go out.
            while next < decisions.len() && decisions[next].seq <= seq {
                self.place(&decisions[next], id);
                next += 1;
            }
            // 3. What arrives by this event's time meets the book as it left it.
            let model = self.model.as_mut().expect("a model");
            model.arrive(t, true);
            let execs = std::mem::take(&mut model.execs);
            let filled = !execs.is_empty();
            for x in execs {
                self.fill_exec(x, seq);
            }
            // 4. Mark to market.
            self.mark(seq, t, filled);
        });
        for d in &decisions[next..] {
            self.perf.decisions += 1;
            if let Output::NewOrder { .. } = d.output {
                self.perf.orders += 1;
            }
        }
    }

    /// Funding at a recorded funding event: position × mark × rate, paid by longs when the
    /// rate is positive.
    fn pay_funding(&mut self, id: u32, f: &tapedeck_guest::codec::Funding, s: u8) {
        let mark = to9(f.mark_price, s);
        let acct = self.account(id);
        if acct.position == 0 {
            return;
        }
        // position (9) × mark (9) × rate (rate scale) -> scale 18, dividing by the rate's
        // scale as quotient and remainder so the product cannot overflow i128.
        let (notional, rate) = (acct.position * mark, f.rate.mantissa as i128);
        let d = 10i128.pow(f.rate.scale.min(18) as u32); // a stored decimal has at most 18 places
        let amount = notional / d * rate + notional % d * rate / d;
        acct.cash -= amount;
        acct.funding -= amount;
    }

    fn fill_exec(&mut self, x: Exec, seq: u64) {
        let o = Resting {
            order_seq: x.order_seq,
            client_order_id: x.client_order_id,
            instrument: x.instrument,
            buy: x.buy,
            price: x.price,
            qty: x.qty,
            active_at: x.time_ns,
            market: false,
        };
        let liquidity = if x.maker { "maker" } else { "taker" };
        self.fill(o, x.price, liquidity, seq, x.time_ns);
    }

    /// The fee rate of a fill: the model's schedule for the instrument (tiers by the venue's
    /// turnover so far), else the plain settings.
    pub(super) fn fee_bps(&self, instrument: u32, maker: bool) -> f64 {
        let plain = if maker {
            self.cfg.maker_fee_bps
        } else {
            self.cfg.taker_fee_bps
        };
        let Some(m) = &self.cfg.model else {
            return plain;
        };
        let sched = self
            .symbols
            .get(&instrument)
            .and_then(|s| m.instrument_fees.get(s))
            .or(m.fees.as_ref());
        match sched {
            Some(f) => {
                let turnover: i128 = self.accounts.iter().map(|a| a.2.turnover).sum();
                f.bps(maker, turnover as f64 / E18)
            }
            None => plain,
        }
    }
}
