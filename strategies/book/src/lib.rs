//! Book projector: the L2 order book per instrument, from a full snapshot plus deltas
//! (a delta level with quantity 0 removes the level). A `custom` event of type `book_gap`
//! (recorded by importers when the venue's update-id chain breaks) empties the book and
//! marks it out of sync until the next snapshot: no silently wrong book. Exact: levels are kept as integer
//! mantissas; the state shows the top `depth` levels per side, best first, as
//! `[price, qty]` pairs, plus the last applied update id. Books are kept by instrument id and
//! shown by symbol (the id where the host named none).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tapedeck_guest::{Event, Levels, Payload, Projector, ProjectorCtx};

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Levels per side in the projected state.
    pub depth: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { depth: 20 }
    }
}

#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct L2 {
    /// The instrument's symbol, as the state names the book.
    #[serde(default)]
    pub symbol: String,
    /// price mantissa -> qty mantissa
    pub bids: BTreeMap<i64, i64>,
    pub asks: BTreeMap<i64, i64>,
    pub last_update_id: u64,
    pub px_scale: u8,
    pub qty_scale: u8,
    pub last_seq: u64,
    /// False after a gap, until the next snapshot.
    pub in_sync: bool,
}

impl L2 {
    fn apply(side: &mut BTreeMap<i64, i64>, levels: &Levels<'_>) {
        for l in levels.iter() {
            if l.qty == 0 {
                side.remove(&l.price);
            } else {
                side.insert(l.price, l.qty);
            }
        }
    }

    pub fn best_bid(&self) -> Option<(i64, i64)> {
        self.bids.iter().next_back().map(|(p, q)| (*p, *q))
    }

    pub fn best_ask(&self) -> Option<(i64, i64)> {
        self.asks.iter().next().map(|(p, q)| (*p, *q))
    }
}

#[derive(Serialize, Deserialize)]
pub struct Book {
    cfg: Config,
    /// Keyed by instrument id.
    pub books: BTreeMap<u32, L2>,
}

/// The book of instrument `id`, named by its symbol when first seen.
fn book<'b>(books: &'b mut BTreeMap<u32, L2>, id: u32, ctx: &ProjectorCtx<'_>) -> &'b mut L2 {
    books.entry(id).or_insert_with(|| L2 {
        symbol: ctx.name(id),
        ..L2::default()
    })
}

impl Projector for Book {
    type Config = Config;

    fn new(cfg: Config) -> Result<Self, String> {
        Ok(Book {
            cfg,
            books: BTreeMap::new(),
        })
    }

    fn on_event(&mut self, ev: &Event<'_>, ctx: &mut ProjectorCtx<'_>) {
        let h = &ev.header;
        match ev.payload {
            Payload::BookSnapshot(s) => {
                let b = book(&mut self.books, h.instrument, ctx);
                b.bids.clear();
                b.asks.clear();
                L2::apply(&mut b.bids, &s.bids);
                L2::apply(&mut b.asks, &s.asks);
                (b.last_update_id, b.px_scale, b.qty_scale, b.last_seq) =
                    (s.update_id, h.px_scale, h.qty_scale, h.seq);
                b.in_sync = true;
            }
            Payload::BookDelta(d) => {
                let b = book(&mut self.books, h.instrument, ctx);
                L2::apply(&mut b.bids, &d.bids);
                L2::apply(&mut b.asks, &d.asks);
                (b.last_update_id, b.px_scale, b.qty_scale, b.last_seq) =
                    (d.final_update_id, h.px_scale, h.qty_scale, h.seq);
            }
            Payload::Custom(c) if c.type_name == "book_gap" => {
                let b = book(&mut self.books, h.instrument, ctx);
                b.bids.clear();
                b.asks.clear();
                b.in_sync = false;
                b.last_seq = h.seq;
            }
            _ => {}
        }
    }

    fn state(&self) -> serde_json::Value {
        let depth = self.cfg.depth;
        let side = |it: &mut dyn Iterator<Item = (&i64, &i64)>, b: &L2| -> Vec<[f64; 2]> {
            it.take(depth)
                .map(|(p, q)| {
                    [
                        *p as f64 / 10f64.powi(b.px_scale as i32),
                        *q as f64 / 10f64.powi(b.qty_scale as i32),
                    ]
                })
                .collect()
        };
        let books: serde_json::Map<String, serde_json::Value> = self
            .books
            .iter()
            .map(|(id, b)| {
                let v = serde_json::json!({
                    "bids": side(&mut b.bids.iter().rev(), b),
                    "asks": side(&mut b.asks.iter(), b),
                    "last_update_id": b.last_update_id,
                    "last_seq": b.last_seq,
                    "in_sync": b.in_sync,
                });
                // A book restored from a snapshot taken before books had symbols: its id.
                let name = match b.symbol.as_str() {
                    "" => id.to_string(),
                    s => s.to_string(),
                };
                (name, v)
            })
            .collect();
        serde_json::json!({ "books": books })
    }
}

tapedeck_guest::export_projector!(Book);
