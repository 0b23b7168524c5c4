//! The stream's instrument table: instrument id → symbol, as the host knows it.
//!
//! Batches carry instrument ids (hashes of the symbols: fixed-size, cheap to compare), and
//! so does a guest's hot path. Symbols are for what a person reads: a projector's state, log
//! lines, metric names. The host hands the table over after `init` and after `restore`, before
//! any batch; [`Ctx::symbol`](crate::Ctx::symbol) and
//! [`ProjectorCtx::symbol`](crate::ProjectorCtx::symbol) look ids up in it.

/// Instrument ids and their symbols, sorted by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instruments {
    by_id: Vec<(u32, String)>,
}

impl Instruments {
    /// A table from (id, symbol) pairs in any order; a repeated id keeps its last symbol.
    pub fn new(pairs: impl IntoIterator<Item = (u32, String)>) -> Self {
        let mut by_id: Vec<(u32, String)> = pairs.into_iter().collect();
        by_id.sort_by_key(|(id, _)| *id);
        by_id.reverse();
        by_id.dedup_by_key(|(id, _)| *id);
        by_id.reverse();
        Instruments { by_id }
    }

    /// The symbol of instrument `id`, if the host named it.
    pub fn symbol(&self, id: u32) -> Option<&str> {
        self.by_id
            .binary_search_by_key(&id, |(k, _)| *k)
            .ok()
            .map(|i| self.by_id[i].1.as_str())
    }

    /// The symbol of `id`, or the id in decimal when the table has none (an event without an
    /// instrument has id 0): a key for state a person reads.
    pub fn name(&self, id: u32) -> String {
        match self.symbol(id) {
            Some(s) => s.to_string(),
            None => id.to_string(),
        }
    }

    /// The id of `symbol`, if it is in the table.
    pub fn id(&self, symbol: &str) -> Option<u32> {
        self.by_id
            .iter()
            .find(|(_, s)| s == symbol)
            .map(|(k, _)| *k)
    }

    /// (id, symbol) pairs, by id.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        self.by_id.iter().map(|(k, s)| (*k, s.as_str()))
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_to_symbols_and_back() {
        let t = Instruments::new([
            (9, "ETHUSDT".into()),
            (3, "BTCUSDT".into()),
            (9, "X".into()),
        ]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.symbol(3), Some("BTCUSDT"));
        assert_eq!(t.symbol(9), Some("X"));
        assert_eq!(t.symbol(4), None);
        assert_eq!(t.name(4), "4");
        assert_eq!(t.id("BTCUSDT"), Some(3));
        assert_eq!(t.iter().map(|(k, _)| k).collect::<Vec<_>>(), [3, 9]);
    }
}
