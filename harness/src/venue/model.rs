//! The venue's realistic path ([`super::types::VenueModel`]): each batch through the model's
//! matcher (`exec.rs`), fills into the same accounts as the plain venue's, fees from the
//! model's schedules, funding at recorded funding events.

use tapedeck_guest::codec::{EventBatch, Payload};

use super::exec::Exec;
use super::{E18, Market, Resting, Top, Venue, to9};
use crate::decision::{Decision, Output};

impl Venue {
    /// [`Venue::on_batch`] through the realistic model.
    pub(super) fn on_batch_model(&mut self, events: EventBatch<'_>, decisions: &[Decision]) {
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
            if new_top.is_some() || trade_px.is_some() {
                let i = match self.markets.iter().position(|x| x.0 == id) {
                    Some(i) => i,
                    None => {
                        self.markets.push((id, Market::default()));
                        self.markets.len() - 1
                    }
                };
                let m = &mut self.markets[i].1;
                if let Some(top) = new_top {
                    m.top = top;
                }
                if trade_px.is_some() {
                    m.last_trade = trade_px;
                }
                m.update_mark();
            }
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
        // position (9) × mark (9) × rate (rate scale) -> scale 18.
        let amount =
            acct.position * mark * f.rate.mantissa as i128 / 10i128.pow(f.rate.scale as u32);
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
