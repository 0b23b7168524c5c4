//! One instrument's L2 book for the realistic venue: levels at exact prices (scale 9), and the
//! best bid and ask tracked the way hftbacktest's `HashMapMarketDepth` tracks them, so that
//! both engines see the same touch on the same data:
//! - a level set to 0 is removed; if it was the best, the best moves to the next level;
//! - a level set above the best bid becomes the best bid, and if it reaches the best ask, the
//!   best ask moves to the first ask level above it (crossed ask levels stay in the map, below
//!   the best, until the data removes them); the same the other way round for asks.
//!
//! With own impact on, fills take quantity off a level; the taken quantity stays off that
//! level's recorded updates until the data removes the level.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub(crate) struct Book {
    bids: BTreeMap<i128, i128>,
    asks: BTreeMap<i128, i128>,
    best_bid: Option<i128>,
    best_ask: Option<i128>,
    /// Quantity own fills took, by (bid side, price); only with own impact.
    taken: BTreeMap<(bool, i128), i128>,
    /// Whether depth data (a snapshot or delta) has been seen: quotes then no longer set it.
    pub depth: bool,
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
        side.get(&px).copied().unwrap_or(0)
    }

    /// Empties the book (a snapshot follows).
    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
        self.best_bid = None;
        self.best_ask = None;
        self.taken.clear();
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
        let (side, other) = if bid {
            (&mut self.bids, &self.asks)
        } else {
            (&mut self.asks, &self.bids)
        };
        let prev = if qty > 0 {
            side.insert(px, qty).unwrap_or(0)
        } else {
            side.remove(&px).unwrap_or(0)
        };
        if bid {
            if qty <= 0 {
                if self.best_bid == Some(px) {
                    self.best_bid = side.range(..px).next_back().map(|l| *l.0);
                }
            } else if self.best_bid.is_none_or(|b| px > b) {
                self.best_bid = Some(px);
                if self.best_ask.is_some_and(|a| px >= a) {
                    self.best_ask = other.range(px + 1..).next().map(|l| *l.0);
                }
            }
        } else if qty <= 0 {
            if self.best_ask == Some(px) {
                self.best_ask = side.range(px + 1..).next().map(|l| *l.0);
            }
        } else if self.best_ask.is_none_or(|a| px < a) {
            self.best_ask = Some(px);
            if self.best_bid.is_some_and(|b| b >= px) {
                self.best_bid = other.range(..px).next_back().map(|l| *l.0);
            }
        }
        (prev, qty.max(0))
    }

    /// The levels a taker on the `buy` side meets, best first, from the touch (levels left
    /// behind the touch by a crossing are skipped), up to `limit` inclusive.
    pub fn levels(&self, buy: bool, limit: Option<i128>) -> Vec<(i128, i128)> {
        if buy {
            let Some(from) = self.best_ask else {
                return Vec::new();
            };
            self.asks
                .range(from..)
                .take_while(|l| limit.is_none_or(|p| *l.0 <= p))
                .map(|(p, q)| (*p, *q))
                .collect()
        } else {
            let Some(from) = self.best_bid else {
                return Vec::new();
            };
            self.bids
                .range(..=from)
                .rev()
                .take_while(|l| limit.is_none_or(|p| *l.0 >= p))
                .map(|(p, q)| (*p, *q))
                .collect()
        }
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
}
