//! `PerInstrument<T>`: per-instrument state for guests. Instrument ids are hashes of symbols,
//! not indexes, so a strategy cannot index a `Vec` by them; this keeps the entries in a small
//! vector with a direct-mapped table in front, so a lookup is one hash, one load and one
//! compare in the common case.

use serde::{Deserialize, Serialize};

const SLOTS: usize = 256;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PerInstrument<T> {
    entries: Vec<(u32, T)>,
    /// `slot(id)` -> index + 1 into `entries` (0: empty). Derived; rebuilt after a restore.
    #[serde(skip)]
    slots: Vec<u16>,
}

impl<T> Default for PerInstrument<T> {
    fn default() -> Self {
        PerInstrument {
            entries: Vec::new(),
            slots: Vec::new(),
        }
    }
}

#[inline]
fn slot(id: u32) -> usize {
    (id.wrapping_mul(0x9E37_79B9) >> 24) as usize
}

impl<T> PerInstrument<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The state of instrument `id`, created with `T::default()` on first use.
    #[inline]
    pub fn get_or_default(&mut self, id: u32) -> &mut T
    where
        T: Default,
    {
        if self.slots.len() != SLOTS {
            self.slots = vec![0; SLOTS];
        }
        let s = slot(id);
        let hit = self.slots[s] as usize;
        let i = if hit != 0 && self.entries[hit - 1].0 == id {
            hit - 1
        } else {
            let i = match self.entries.iter().position(|(k, _)| *k == id) {
                Some(i) => i,
                None => {
                    self.entries.push((id, T::default()));
                    self.entries.len() - 1
                }
            };
            // Past 65535 instruments the table stops helping; lookups stay correct.
            if let Ok(v) = u16::try_from(i + 1) {
                self.slots[s] = v;
            }
            i
        };
        &mut self.entries[i].1
    }

    pub fn get(&self, id: u32) -> Option<&T> {
        self.entries.iter().find(|(k, _)| *k == id).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_ids_keep_their_own_state_and_survive_a_round_trip() {
        let mut m: PerInstrument<u64> = PerInstrument::new();
        // Ids with the same slot.
        let a = 7u32;
        let b = (1..u32::MAX)
            .find(|x| slot(*x) == slot(a) && *x != a)
            .unwrap();
        *m.get_or_default(a) += 1;
        *m.get_or_default(b) += 10;
        *m.get_or_default(a) += 1;
        assert_eq!((m.get(a), m.get(b)), (Some(&2), Some(&10)));
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, format!("[[7,2],[{b},10]]"));
        let mut back: PerInstrument<u64> = serde_json::from_str(&json).unwrap();
        *back.get_or_default(b) += 1;
        assert_eq!(
            (back.get(a), back.get(b), back.len()),
            (Some(&2), Some(&11), 2)
        );
    }
}
