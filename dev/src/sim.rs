//! A minimal fill simulator: market orders fill in full at the opposite best of the latest
//! quote at or before the event that caused them. Exact fixed-point accounting; enough to
//! compare two runs' PnL. (The full simulated venue with limit orders, latency and fees is
//! the backtest's job.)

use std::collections::BTreeMap;

use tapedeck_guest::codec::{EventBatch, OrderType, Output, OutputBatch, Payload, Quote, pow10};

/// Per instrument: position and cash, both as exact mantissas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    /// Signed quantity mantissa.
    pub position: i64,
    /// Cash mantissa at scale `px_scale + qty_scale`.
    pub cash: i128,
    pub px_scale: u8,
    pub qty_scale: u8,
    pub last: Option<Quote>,
    pub fills: u64,
}

impl Book {
    /// Cash plus the position marked at the mid of the last quote.
    pub fn pnl(&self) -> f64 {
        let mark = self.last.map_or(0, |q| q.bid_px + q.ask_px) as i128; // 2 x mid
        let value = self.cash * 2 + self.position as i128 * mark;
        value as f64 / 2.0 / pow10(self.px_scale + self.qty_scale)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketSim {
    pub books: BTreeMap<u32, Book>,
    pub orders: u64,
    /// Orders that could not fill (no quote yet, or not a market order).
    pub unfilled: u64,
}

impl MarketSim {
    /// Applies one event batch and the outputs the strategy produced for it.
    pub fn apply(&mut self, events: &[u8], outputs: &[u8]) {
        let mut outs = OutputBatch::new(outputs)
            .expect("outputs were validated by the runtime")
            .peekable();
        for ev in EventBatch::new(events).expect("batch from this host") {
            let ev = ev.expect("batch from this host");
            if let Payload::Quote(q) = ev.payload {
                let b = self.books.entry(ev.header.instrument).or_default();
                b.last = Some(q);
                (b.px_scale, b.qty_scale) = (ev.header.px_scale, ev.header.qty_scale);
            }
            while let Some(Ok(rec)) =
                outs.next_if(|r| matches!(r, Ok(r) if r.cause_seq <= ev.header.seq))
            {
                if let Output::NewOrder(o) = rec.output {
                    self.orders += 1;
                    let b = self.books.entry(o.instrument).or_default();
                    match (o.order_type, b.last) {
                        (OrderType::Market, Some(q)) => {
                            let px = if o.side.sign() > 0 {
                                q.ask_px
                            } else {
                                q.bid_px
                            };
                            let qty = o.qty * o.side.sign();
                            b.position += qty;
                            b.cash -= px as i128 * qty as i128;
                            b.fills += 1;
                        }
                        _ => self.unfilled += 1,
                    }
                }
            }
        }
    }

    pub fn pnl(&self) -> f64 {
        self.books.values().map(Book::pnl).sum()
    }

    pub fn fills(&self) -> u64 {
        self.books.values().map(|b| b.fills).sum()
    }
}
