//! An L2 book as Binance's depth stream describes it: levels set by a snapshot, then changed by
//! diffs (a quantity of zero removes its level). The feed simulator serves it as the REST
//! snapshot; tests fold stored streams into it to compare them with an oracle.

use std::collections::BTreeMap;

use crate::event::{Body, Dec, LevelPair};

/// Prices are ordered by value whatever their scale: the key is the price at 18 decimals.
type Key = i128;

fn key(price: Dec) -> Key {
    let d = price.0;
    i128::from(d.mantissa) * 10i128.pow(18u32.saturating_sub(u32::from(d.scale)))
}

/// One side's levels, by price.
type Side = BTreeMap<Key, LevelPair>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    bids: Side,
    asks: Side,
    /// The last update id applied (`lastUpdateId` of a snapshot, `u` of a diff).
    pub update_id: u64,
}

impl Book {
    /// The book of a snapshot.
    pub fn from_levels(update_id: u64, bids: &[LevelPair], asks: &[LevelPair]) -> Book {
        let mut b = Book {
            update_id,
            ..Book::default()
        };
        b.apply(update_id, bids, asks);
        b
    }

    /// Applies a diff's levels (zero removes a level) as of update id `u`.
    pub fn apply(&mut self, u: u64, bids: &[LevelPair], asks: &[LevelPair]) {
        for (side, levels) in [(&mut self.bids, bids), (&mut self.asks, asks)] {
            for l in levels {
                if l[1].0.mantissa == 0 {
                    side.remove(&key(l[0]));
                } else {
                    side.insert(key(l[0]), *l);
                }
            }
        }
        self.update_id = u;
    }

    /// Applies a stored event: a snapshot replaces the book, a delta changes it. `None` for
    /// an event that leaves the book unknown (a `book_gap`), `Some(false)` for one that does
    /// not touch it.
    pub fn apply_event(&mut self, body: &Body) -> Option<bool> {
        match body {
            Body::BookSnapshot {
                update_id,
                bids,
                asks,
            } => *self = Book::from_levels(*update_id, bids, asks),
            Body::BookDelta {
                final_update_id,
                bids,
                asks,
                ..
            } => self.apply(*final_update_id, bids, asks),
            Body::Custom { type_name, .. } if type_name == "book_gap" => return None,
            _ => return Some(false),
        }
        Some(true)
    }

    /// Bids, best (highest) first.
    pub fn bids(&self) -> impl Iterator<Item = &LevelPair> {
        self.bids.values().rev()
    }

    /// Asks, best (lowest) first.
    pub fn asks(&self) -> impl Iterator<Item = &LevelPair> {
        self.asks.values()
    }

    /// Levels per side (bids, asks).
    pub fn depth(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }

    /// The REST depth snapshot of the best `limit` levels of each side, as Binance sends it.
    pub fn snapshot_json(&self, limit: usize) -> String {
        let side = |levels: &mut dyn Iterator<Item = &LevelPair>| -> Vec<[String; 2]> {
            levels
                .take(limit)
                .map(|l| [l[0].to_string(), l[1].to_string()])
                .collect()
        };
        serde_json::json!({
            "lastUpdateId": self.update_id,
            "bids": side(&mut self.bids()),
            "asks": side(&mut self.asks()),
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(p: &str, q: &str) -> LevelPair {
        [p.parse().unwrap(), q.parse().unwrap()]
    }

    #[test]
    fn levels_order_by_value_and_zero_removes() {
        let mut b = Book::from_levels(
            5,
            &[l("9.5", "1"), l("10.25", "2")],
            &[l("11", "1"), l("10.5", "3")],
        );
        b.apply(6, &[l("9.50", "0"), l("10.3", "1")], &[]);
        let px = |it: &mut dyn Iterator<Item = &LevelPair>| -> Vec<String> {
            it.map(|l| l[0].to_string()).collect()
        };
        assert_eq!(px(&mut b.bids()), ["10.3", "10.25"]);
        assert_eq!(px(&mut b.asks()), ["10.5", "11"]);
        assert_eq!(b.update_id, 6);
        let json: serde_json::Value = serde_json::from_str(&b.snapshot_json(1)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"lastUpdateId": 6, "bids": [["10.3", "1"]], "asks": [["10.5", "3"]]})
        );
    }
}
