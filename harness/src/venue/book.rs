//! One instrument's L2 book for the realistic venue: levels at exact prices (scale 9), and the
//! best bid and ask tracked the way hftbacktest's `HashMapMarketDepth` tracks them, so that
//! both engines see the same touch on the same data:
//! - a level set to 0 is removed; if it was the best, the best moves to the next level;
//! - a level set above the best bid becomes the best bid, and if it reaches the best ask, the
//!   best ask moves to the first ask level above it (crossed ask levels stay in the map, below
//!   the best, until the data removes them); the same the other way round for asks.
//!
//! Each side is a sorted ring buffer, best level last. With own impact on, fills take quantity off
//! a level; the taken quantity stays off that
//! level's recorded updates until the data removes the level.

use std::collections::{BTreeMap, VecDeque};

/// One side's levels as a sorted ring buffer with the best level last (bids ascending, asks
/// descending): an insert or removal moves the shorter part, so updates near the touch and
/// deep in the book are both cheap.
#[derive(Debug, Clone, Default)]
struct Side {
    levels: VecDeque<(i128, i128)>,
    /// Asks: descending prices.
    desc: bool,
}

impl Side {
    /// Whether price `a` sorts before `b` on this side.
    #[inline]
    fn before(&self, a: i128, b: i128) -> bool {
        if self.desc { a > b } else { a < b }
    }

    #[inline]
    fn find(&self, px: i128) -> Result<usize, usize> {
        if self.desc {
            self.levels.binary_search_by(|l| px.cmp(&l.0))
        } else {
            self.levels.binary_search_by(|l| l.0.cmp(&px))
        }
    }

    fn get(&self, px: i128) -> Option<i128> {
        self.find(px).ok().map(|i| self.levels[i].1)
    }

    /// Sets a level (0 removes it); the quantity before.
    fn set(&mut self, px: i128, qty: i128) -> i128 {
        match self.find(px) {
            Ok(i) => {
                let prev = self.levels[i].1;
                if qty > 0 {
                    self.levels[i].1 = qty;
                } else {
                    self.levels.remove(i);
                }
                prev
            }
            Err(i) => {
                if qty > 0 {
                    self.levels.insert(i, (px, qty));
                }
                0
            }
        }
    }

    /// The next level beyond `px` away from the touch (lower bids, higher asks).
    fn behind(&self, px: i128) -> Option<i128> {
        let n = self.levels.partition_point(|l| self.before(l.0, px));
        n.checked_sub(1).map(|i| self.levels[i].0)
    }

    /// The levels at or behind `from`, best first.
    fn from(&self, from: i128) -> impl Iterator<Item = &(i128, i128)> {
        let n = self.levels.partition_point(|l| !self.before(from, l.0));
        self.levels.range(..n).rev()
    }

    fn clear(&mut self) {
        self.levels.clear();
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Book {
    bids: Side,
    asks: Side,
    best_bid: Option<i128>,
    best_ask: Option<i128>,
    /// Quantity own fills took, by (bid side, price); only with own impact.
    taken: BTreeMap<(bool, i128), i128>,
    /// Whether depth data (a snapshot or delta) has been seen: quotes then no longer set it.
    pub depth: bool,
}

impl Default for Book {
    fn default() -> Self {
        Book {
            bids: Side::default(),
            asks: Side {
                levels: VecDeque::new(),
                desc: true,
            },
            best_bid: None,
            best_ask: None,
            taken: BTreeMap::new(),
            depth: false,
        }
    }
}

impl Book {
    pub fn best_bid(&self) -> Option<i128> {
        self.best_bid
    }

    pub fn best_ask(&self) -> Option<i128> {
        self.best_ask
    }

    /// The quantity at `px` on the bid (`bid`) or ask side.
    pub fn qty_at(&self, bid: bool, px: i128) -> i128 {
        let side = if bid { &self.bids } else { &self.asks };
        side.get(px).unwrap_or(0)
    }

    /// Empties the book (a snapshot follows).
    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
        self.best_bid = None;
        self.best_ask = None;
        self.taken.clear();
    }

    /// A quote replaces a one-level book (an instrument with no depth data): the quoted
    /// levels as recorded, less what own impact took from a level still quoted at the same
    /// price; a level no longer quoted is gone, and what was taken from it with it.
    pub fn quote(&mut self, bid: (i128, i128), ask: (i128, i128)) {
        let kept: Vec<((bool, i128), i128)> = [(true, bid.0), (false, ask.0)]
            .into_iter()
            .filter_map(|k| Some((k, *self.taken.get(&k)?)))
            .collect();
        self.clear();
        self.taken.extend(kept);
        self.update(true, bid.0, bid.1);
        self.update(false, ask.0, ask.1);
    }

    /// A recorded update of one level; returns the level's quantity before and after.
    pub fn update(&mut self, bid: bool, px: i128, recorded: i128) -> (i128, i128) {
        let qty = if self.taken.is_empty() {
            recorded
        } else if recorded <= 0 {
            self.taken.remove(&(bid, px));
            recorded
        } else {
            let t = self.taken.get(&(bid, px)).copied().unwrap_or(0);
            (recorded - t).max(0)
        };
        self.set(bid, px, qty)
    }

    /// Own impact: `qty` taken from the level at `px`.
    pub fn take(&mut self, bid: bool, px: i128, qty: i128) {
        *self.taken.entry((bid, px)).or_insert(0) += qty;
        let left = (self.qty_at(bid, px) - qty).max(0);
        self.set(bid, px, left);
    }

    fn set(&mut self, bid: bool, px: i128, qty: i128) -> (i128, i128) {
        if bid {
            let prev = self.bids.set(px, qty);
            if qty <= 0 {
                if self.best_bid == Some(px) {
                    self.best_bid = self.bids.behind(px);
                }
            } else if self.best_bid.is_none_or(|b| px > b) {
                self.best_bid = Some(px);
                if self.best_ask.is_some_and(|a| px >= a) {
                    self.best_ask = self.asks.behind(px);
                }
            }
            (prev, qty.max(0))
        } else {
            let prev = self.asks.set(px, qty);
            if qty <= 0 {
                if self.best_ask == Some(px) {
                    self.best_ask = self.asks.behind(px);
                }
            } else if self.best_ask.is_none_or(|a| px < a) {
                self.best_ask = Some(px);
                if self.best_bid.is_some_and(|b| b >= px) {
                    self.best_bid = self.bids.behind(px);
                }
            }
            (prev, qty.max(0))
        }
    }

    /// The levels a taker on the `buy` side meets, best first, from the touch (levels left
    /// behind the touch by a crossing are skipped), up to `limit` inclusive.
    pub fn levels(&self, buy: bool, limit: Option<i128>) -> Vec<(i128, i128)> {
        let (side, from) = if buy {
            (&self.asks, self.best_ask)
        } else {
            (&self.bids, self.best_bid)
        };
        let Some(from) = from else {
            return Vec::new();
        };
        side.from(from)
            .take_while(|l| limit.is_none_or(|p| if buy { l.0 <= p } else { l.0 >= p }))
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossing_bid_moves_the_best_ask_and_leaves_the_level() {
        let mut b = Book::default();
        b.update(true, 100, 5);
        b.update(false, 101, 3);
        b.update(false, 102, 4);
        assert_eq!((b.best_bid(), b.best_ask()), (Some(100), Some(101)));
        // A bid at 101 crosses: the ask at 101 stays in the map, below the best.
        b.update(true, 101, 2);
        assert_eq!((b.best_bid(), b.best_ask()), (Some(101), Some(102)));
        assert_eq!(b.qty_at(false, 101), 3);
        assert_eq!(b.levels(true, None), vec![(102, 4)]);
        // Removing the best bid falls back to the next bid.
        b.update(true, 101, 0);
        assert_eq!(b.best_bid(), Some(100));
        assert_eq!(b.best_ask(), Some(102));
    }

    #[test]
    fn taken_quantity_stays_off_until_the_level_goes() {
        let mut b = Book::default();
        b.update(false, 101, 3);
        b.take(false, 101, 2);
        assert_eq!(b.qty_at(false, 101), 1);
        b.update(false, 101, 5);
        assert_eq!(b.qty_at(false, 101), 3);
        b.update(false, 101, 0);
        b.update(false, 101, 5);
        assert_eq!(b.qty_at(false, 101), 5);
    }

    /// The ring-buffer sides against a plain ordered map under the same rules, on random
    /// updates near and far from the touch.
    #[test]
    fn sides_agree_with_an_ordered_map() {
        let mut b = Book::default();
        let (mut bids, mut asks) = (BTreeMap::new(), BTreeMap::new());
        let (mut bb, mut ba): (Option<i128>, Option<i128>) = (None, None);
        let mut x: u64 = 12345;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let bid = x >> 63 == 1;
            let px = 1000 + ((x >> 20) % 200) as i128;
            let qty = if (x >> 40).is_multiple_of(3) {
                0
            } else {
                ((x >> 44) % 9) as i128
            };
            b.update(bid, px, qty);
            let (side, other) = if bid {
                (&mut bids, &asks)
            } else {
                (&mut asks, &bids)
            };
            if qty > 0 {
                side.insert(px, qty);
            } else {
                side.remove(&px);
            }
            if bid {
                if qty == 0 {
                    if bb == Some(px) {
                        bb = bids.range(..px).next_back().map(|l| *l.0);
                    }
                } else if bb.is_none_or(|v| px > v) {
                    bb = Some(px);
                    if ba.is_some_and(|a| px >= a) {
                        ba = other.range(px + 1..).next().map(|l| *l.0);
                    }
                }
            } else if qty == 0 {
                if ba == Some(px) {
                    ba = asks.range(px + 1..).next().map(|l| *l.0);
                }
            } else if ba.is_none_or(|v| px < v) {
                ba = Some(px);
                if bb.is_some_and(|v| v >= px) {
                    bb = other.range(..px).next_back().map(|l| *l.0);
                }
            }
            assert_eq!((b.best_bid(), b.best_ask()), (bb, ba));
            assert_eq!(b.qty_at(bid, px), qty.max(0));
        }
        let walk: Vec<(i128, i128)> = match ba {
            Some(a) => asks.range(a..).map(|(p, q)| (*p, *q)).collect(),
            None => vec![],
        };
        assert_eq!(b.levels(true, None), walk);
    }
}
