//! What an import reports: its counts and its findings (gaps in the update-id chain, damaged
//! input). A finding is data: the import went on, and the command exits 1 to ask for a look.

use std::collections::BTreeMap;

use serde::Serialize;

/// A break in the update-id chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GapFinding {
    pub stream: String,
    pub file: String,
    pub line: u64,
    /// What the chain needed next (`U` for spot, `pu` for futures).
    pub expected: u64,
    pub got: u64,
    /// The seq of the `book_gap` event recorded in the stream.
    pub seq: u64,
}

/// Input that ended before its end: a truncated or corrupt gzip stream. The lines before the
/// damage were imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputFinding {
    pub file: String,
    /// Complete lines read before the damage.
    pub lines: u64,
    /// Bytes read (decompressed) before the damage, the incomplete last line included.
    pub bytes: u64,
    /// `truncated gzip stream`, or `corrupt gzip stream: ..`.
    pub message: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportSummary {
    pub lines: u64,
    /// Market-data events stored.
    pub events: u64,
    /// Events by stream, then event type (market-data streams).
    pub by_stream: BTreeMap<String, BTreeMap<String, u64>>,
    /// `import_state` events stored (one per stream read, per append).
    pub checkpoints: u64,
    /// Diffs older than the snapshot they were waiting for (dropped by the procedure).
    pub superseded_diffs: u64,
    /// Diffs seen while no snapshot was available (before the first, or after a gap), still
    /// buffered at the end (kept in the stream's import state for the next import) or dropped
    /// from a full buffer.
    pub unsynced_diffs: u64,
    pub snapshots: u64,
    pub gaps: Vec<GapFinding>,
    /// Lines an earlier import read already (a re-run, or an overlapping capture), skipped.
    pub already_stored: u64,
    pub quarantined: u64,
    /// Where quarantined lines went (a file of the file store, a table in PostgreSQL).
    pub quarantined_to: Option<String>,
    /// Inputs that ended early: truncated or corrupt gzip streams.
    pub truncated: Vec<InputFinding>,
}

impl ImportSummary {
    /// No gaps, nothing quarantined, no damaged input: exit 0. Otherwise the findings ask for
    /// a look (exit 1); nothing was lost either way.
    pub fn is_clean(&self) -> bool {
        self.gaps.is_empty() && self.quarantined == 0 && self.truncated.is_empty()
    }
}
