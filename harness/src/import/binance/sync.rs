//! Book sync, the documented way, as a state machine that knows no store: diffs wait for a
//! snapshot; spot: a diff with `u <= lastUpdateId` is superseded by it, the first applied
//! diff straddles `lastUpdateId + 1`, after that each diff's `U` is the previous `u + 1`;
//! USD-M futures: a diff with `u < lastUpdateId` is superseded, the first applied has
//! `U <= lastUpdateId <= u`, after that each diff's `pu` is the previous `u`. A break is a
//! [`Step::Gap`] and the diff waits for the next snapshot.
//!
//! [`SyncState`] is everything an import must hand to the next one for a split import to equal
//! a whole one: the last applied update id (synced or not), the snapshot waiting for its
//! straddling diff, the buffered diffs, and how far the capture was read (the capture time of
//! the last line read, and how many lines carried that time). The importer stores it as the
//! payload of a `custom` event `import_state` ([`IMPORT_STATE`]) in a stream of its own, in the
//! same append as the events it goes with.
//!
//! Invariants: `pending` holds at most [`MAX_PENDING`] diffs, oldest first; `last_u` and
//! `snapshot_id` are never both set; `read_until` only grows.

use serde::{Deserialize, Serialize};

use crate::event::LevelPair;

/// The `custom` event type of a stored [`SyncState`].
pub const IMPORT_STATE: &str = "import_state";

/// Diffs buffered while waiting for a snapshot, at most.
pub const MAX_PENDING: usize = 10_000;

/// A depth diff (`depthUpdate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    /// `U`.
    pub first: u64,
    /// `u`.
    pub last: u64,
    /// `pu` (USD-M futures only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<u64>,
    pub bids: Vec<LevelPair>,
    pub asks: Vec<LevelPair>,
}

/// A diff waiting for a snapshot, with the times its `book_delta` will carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub diff: Diff,
    /// Event time (ns).
    pub time: i64,
    /// Capture time (ns).
    pub local: i64,
}

/// What to do with a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// It continues the book: store it as a `book_delta`.
    Apply(Diff),
    /// It breaks the chain: record a gap (the diff now waits for a snapshot).
    Gap { expected: u64, got: u64 },
    /// Older than the snapshot waiting for its first diff: dropped by the procedure.
    Superseded,
    /// Buffered until a snapshot; `overflowed` when the oldest buffered diff was dropped.
    Buffered { overflowed: bool },
}

/// One stream's book sync and read position: what an import carries to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// The market-data stream's last seq once the events this state goes with are stored: a
    /// state that does not match its stream is not used.
    pub seq: u64,
    /// Whether the book is in sync (`last_u` is set): for people reading the stream.
    pub synced: bool,
    /// The last applied update id while in sync.
    pub last_u: Option<u64>,
    /// A snapshot we have, whose first straddling diff has not come yet.
    pub snapshot_id: Option<u64>,
    /// Diffs waiting for a snapshot, oldest first.
    pub pending: Vec<Pending>,
    /// The capture time of the last line of this stream read (the latest, if a capture ever
    /// went back in time).
    pub read_until: Option<i64>,
    /// How many lines of this stream with capture time `read_until` were read.
    pub read_at_until: u64,
}

impl SyncState {
    /// The state of a stream imported before states were stored: in sync from the last stored
    /// book update, or waiting for a snapshot after a gap; nothing buffered.
    pub fn legacy(last_u: Option<u64>) -> Self {
        SyncState {
            last_u,
            synced: last_u.is_some(),
            ..SyncState::default()
        }
    }

    /// Marks a line of this stream captured at `local` as read.
    pub fn read(&mut self, local: i64) {
        match self.read_until {
            Some(t) if t == local => self.read_at_until += 1,
            Some(t) if t > local => {}
            _ => {
                self.read_until = Some(local);
                self.read_at_until = 1;
            }
        }
    }

    /// A snapshot with `lastUpdateId` `id`: the book restarts from it; returns the buffered
    /// diffs, to be offered again with [`SyncState::diff`] in order.
    pub fn snapshot(&mut self, id: u64) -> Vec<Pending> {
        self.set_last(None);
        self.snapshot_id = Some(id);
        std::mem::take(&mut self.pending)
    }

    /// The next diff, with its event and capture times.
    pub fn diff(&mut self, d: Diff, time: i64, local: i64) -> Step {
        match (self.last_u, self.snapshot_id) {
            // In sync: the chain must continue.
            (Some(last), _) => {
                let ok = match d.prev {
                    Some(pu) => pu == last,
                    None => last.checked_add(1) == Some(d.first),
                };
                if ok {
                    return self.apply(d);
                }
                let expected = match d.prev {
                    Some(_) => last,
                    None => last.saturating_add(1),
                };
                let got = d.prev.unwrap_or(d.first);
                self.set_last(None);
                self.snapshot_id = None;
                self.buffer(d, time, local);
                Step::Gap { expected, got }
            }
            // Waiting for the first diff after a snapshot. Spot: drop `u <= lastUpdateId`, the
            // first applied has `U <= lastUpdateId + 1`. USD-M futures (diffs with `pu`): drop
            // `u < lastUpdateId`, the first applied has `U <= lastUpdateId <= u` (its `U` does
            // not follow the previous `u`, so a snapshot at some diff's `u` would never be
            // straddled by the spot rule).
            (None, Some(id)) => {
                let (stale, starts) = match d.prev {
                    Some(_) => (d.last < id, d.first <= id),
                    None => (d.last <= id, d.first <= id.saturating_add(1)),
                };
                if stale {
                    return Step::Superseded;
                }
                if !starts {
                    // The snapshot is older than this diff's start: still a gap; wait for the
                    // next.
                    self.snapshot_id = None;
                    return Step::Buffered {
                        overflowed: self.buffer(d, time, local),
                    };
                }
                self.apply(d)
            }
            // No snapshot yet: buffer.
            (None, None) => Step::Buffered {
                overflowed: self.buffer(d, time, local),
            },
        }
    }

    fn apply(&mut self, d: Diff) -> Step {
        self.set_last(Some(d.last));
        self.snapshot_id = None;
        Step::Apply(d)
    }

    fn set_last(&mut self, last: Option<u64>) {
        self.last_u = last;
        self.synced = last.is_some();
    }

    /// Buffers a diff; true when the buffer was full and its oldest diff was dropped.
    fn buffer(&mut self, diff: Diff, time: i64, local: i64) -> bool {
        self.pending.push(Pending { diff, time, local });
        if self.pending.len() > MAX_PENDING {
            self.pending.remove(0);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(first: u64, last: u64) -> Diff {
        Diff {
            first,
            last,
            prev: None,
            bids: vec![],
            asks: vec![],
        }
    }

    #[test]
    fn diffs_wait_for_the_snapshot_then_the_straddling_one_applies() {
        let mut s = SyncState::default();
        assert_eq!(s.diff(d(1, 2), 0, 0), Step::Buffered { overflowed: false });
        assert_eq!(s.diff(d(3, 6), 0, 0), Step::Buffered { overflowed: false });
        let pending = s.snapshot(4);
        assert!(!s.synced);
        let steps: Vec<Step> = pending
            .into_iter()
            .map(|p| s.diff(p.diff, p.time, p.local))
            .collect();
        assert_eq!(steps, [Step::Superseded, Step::Apply(d(3, 6))]);
        assert!(s.synced);
        assert_eq!(
            s.diff(d(8, 9), 0, 0),
            Step::Gap {
                expected: 7,
                got: 8
            }
        );
        assert_eq!((s.synced, s.pending.len()), (false, 1));
    }

    #[test]
    fn a_futures_snapshot_at_a_diffs_u_is_straddled_by_that_diff() {
        let f = |first: u64, last: u64, pu: u64| Diff {
            prev: Some(pu),
            ..d(first, last)
        };
        let mut s = SyncState::default();
        // Futures ids are not contiguous: U of a diff is not the previous u + 1.
        s.diff(f(10, 20, 5), 0, 0);
        s.diff(f(25, 30, 20), 0, 0);
        s.diff(f(33, 40, 30), 0, 0);
        let steps: Vec<Step> = s
            .snapshot(30)
            .into_iter()
            .map(|p| s.diff(p.diff, p.time, p.local))
            .collect();
        assert_eq!(
            steps,
            [
                Step::Superseded,
                Step::Apply(f(25, 30, 20)),
                Step::Apply(f(33, 40, 30))
            ]
        );
        // A snapshot older than every diff it is given is no start.
        let mut s = SyncState::default();
        s.snapshot(30);
        assert_eq!(
            s.diff(f(33, 40, 31), 0, 0),
            Step::Buffered { overflowed: false }
        );
        assert!(!s.synced && s.snapshot_id.is_none());
    }

    #[test]
    fn the_state_round_trips_through_its_json() {
        let mut s = SyncState::default();
        s.diff(d(1, 2), 10, 11);
        s.read(11);
        s.read(11);
        let back: SyncState = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!((back.read_until, back.read_at_until), (Some(11), 2));
    }

    #[test]
    fn reading_back_in_time_keeps_the_latest_position() {
        let mut s = SyncState::default();
        s.read(5);
        s.read(3);
        s.read(5);
        assert_eq!((s.read_until, s.read_at_until), (Some(5), 2));
    }
}
