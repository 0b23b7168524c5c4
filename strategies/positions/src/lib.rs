//! Positions projector: per instrument, from fills: signed quantity, average entry price,
//! realized PnL, fees, and counts. Average-cost accounting: a fill that reduces a position
//! realizes `(price - avg) * closed_qty` (sign-adjusted); one that flips it opens the rest at
//! the fill price. Positions are keyed by the instrument's symbol (its id where the host
//! named none).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tapedeck_guest::{Event, Payload, Projector, ProjectorCtx};

#[derive(Serialize, Deserialize, Default, Clone, PartialEq, Debug)]
pub struct Position {
    pub qty: f64,
    pub avg_price: f64,
    pub realized_pnl: f64,
    pub fees: f64,
    pub fills: u64,
    pub volume: f64,
    pub last_seq: u64,
}

#[derive(Serialize, Deserialize, Default)]
pub struct Positions {
    /// Keyed by instrument symbol.
    pub instruments: BTreeMap<String, Position>,
}

impl Projector for Positions {
    type Config = ();

    fn new(_: ()) -> Result<Self, String> {
        Ok(Positions::default())
    }

    fn on_event(&mut self, ev: &Event<'_>, ctx: &mut ProjectorCtx<'_>) {
        let Payload::Fill(f) = ev.payload else { return };
        let id = ev.header.instrument;
        let p = match ctx.symbol(id) {
            Some(sym) if self.instruments.contains_key(sym) => {
                self.instruments.get_mut(sym).expect("checked")
            }
            _ => self.instruments.entry(ctx.name(id)).or_default(),
        };
        let (price, qty) = (ev.px(f.price), ev.qty(f.qty) * f.side.sign() as f64);
        p.fills += 1;
        p.volume += qty.abs();
        p.fees += f.fee.to_f64();
        p.realized_pnl -= f.fee.to_f64();
        p.last_seq = ev.header.seq;
        if p.qty == 0.0 || p.qty.signum() == qty.signum() {
            // Opening or adding: the average moves.
            let new_qty = p.qty + qty;
            p.avg_price = (p.avg_price * p.qty.abs() + price * qty.abs()) / new_qty.abs();
            p.qty = new_qty;
            return;
        }
        // Reducing, closing or flipping.
        let closed = qty.abs().min(p.qty.abs());
        p.realized_pnl += (price - p.avg_price) * closed * p.qty.signum();
        let new_qty = p.qty + qty;
        if new_qty == 0.0 {
            p.avg_price = 0.0;
        } else if new_qty.signum() != p.qty.signum() {
            p.avg_price = price;
        }
        p.qty = new_qty;
    }
}

tapedeck_guest::export_projector!(Positions);
