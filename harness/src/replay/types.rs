//! What a replay takes and gives: where it starts and stops, the modules with their configs,
//! its options, and its reports and findings.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::decision::Decision;
use crate::diff::Tolerances;
use crate::runtime::Module;
use crate::time::parse_rfc3339;

/// Where a replay starts or stops: a seq, or an event time (ns since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Point {
    Seq(u64),
    Time(i64),
}

impl std::str::FromStr for Point {
    type Err = String;

    /// A plain integer is a seq; `t:<ns>` or an RFC 3339 UTC time (`2024-08-08T23:55:00Z`) is a time.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Some(ns) = s.strip_prefix("t:") {
            return ns
                .parse()
                .map(Point::Time)
                .map_err(|_| format!("bad time {s:?}: want t:<ns since epoch>"));
        }
        if let Ok(seq) = s.parse() {
            return Ok(Point::Seq(seq));
        }
        parse_rfc3339(s).map(Point::Time).ok_or_else(|| {
            format!(
                "{s:?} is neither a seq, t:<ns>, nor a valid UTC time like 2024-08-08T23:55:00Z"
            )
        })
    }
}

/// A module to run, with its config (JSON; "" for defaults).
#[derive(Debug, Clone)]
pub struct Plugin {
    pub module: Module,
    pub config: String,
    /// What reports call it; defaults to the module's name (a regression run says
    /// "baseline" and "candidate", which may be two builds of one module).
    pub label: Option<String>,
}

impl Plugin {
    pub fn new(module: Module, config: impl Into<String>) -> Self {
        Plugin {
            module,
            config: config.into(),
            label: None,
        }
    }

    /// The name stored snapshots use: the module's own name.
    pub fn name(&self) -> &str {
        &self.module.info().name
    }

    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or_else(|| self.name())
    }
}

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub streams: String,
    pub from: Option<Point>,
    pub to: Option<Point>,
    pub jobs: usize,
    /// Events per guest call (batches also end at stored snapshots).
    pub batch: usize,
    pub tolerances: Tolerances,
    /// Keep every strategy output (decisions), not only counts.
    pub keep_outputs: bool,
    /// Counts events as batches complete, for a progress display (never for results).
    pub progress: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    /// Diff projector state against the store's snapshots (off for snapshot tests, which
    /// compare against their own files).
    pub check_stored: bool,
    /// Replay only this shard's streams ([`crate::shard::Shard::takes_stream`]); each keeps
    /// the number it has in the whole selection, so a shard replays exactly as the whole run.
    pub shard: Option<crate::shard::Shard>,
    /// Strategies start fresh at this seq, with no earlier event (a warm-up check's start
    /// points; ignored when projectors restore from a stored snapshot).
    pub cold_start: Option<u64>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            streams: "*".into(),
            from: None,
            to: None,
            jobs: 1,
            batch: 1024,
            tolerances: Tolerances::default(),
            keep_outputs: false,
            progress: None,
            check_stored: true,
            shard: None,
            cold_start: None,
        }
    }
}

/// Something a replay found. Data, not an error.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "kind")]
pub enum Finding {
    StateMismatch {
        stream: String,
        seq: u64,
        projector: String,
        path: String,
        expected: Value,
        actual: Value,
    },
    GuestTrap {
        stream: String,
        module: String,
        message: String,
        first_seq: u64,
        last_seq: u64,
    },
}

impl Finding {
    pub fn stream(&self) -> &str {
        match self {
            Finding::StateMismatch { stream, .. } | Finding::GuestTrap { stream, .. } => stream,
        }
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StreamReport {
    pub stream: String,
    /// The first seq replayed (after the anchor, if one was used).
    pub start_seq: u64,
    /// The stored snapshot the replay started from, if any.
    pub anchor_seq: Option<u64>,
    pub last_seq: u64,
    pub events: u64,
    /// Stored snapshots diffed.
    pub snapshots_checked: u64,
    pub findings: Vec<Finding>,
    /// Per strategy label: outputs emitted.
    pub output_counts: BTreeMap<String, u64>,
    /// Per strategy label, when `keep_outputs`: every output.
    #[serde(skip)]
    pub outputs: BTreeMap<String, Vec<Decision>>,
    /// Per projector: state at the end of the range.
    pub final_states: BTreeMap<String, Value>,
    /// The stream's instruments (guest id to symbol), as the store gave them at the start.
    #[serde(skip)]
    pub instruments: BTreeMap<u32, String>,
    /// XXH3-128 of the events read (each one's seq and time, little-endian, its packed
    /// record's length and bytes), 32 hex digits: what the run card pins.
    #[serde(skip)]
    pub digest: String,
}

/// What a run read from one stream, as its run card pins it: the seqs, the count and the
/// digest of the events ([`StreamReport::digest`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DataPin {
    /// [`StreamReport::digest`].
    pub digest: String,
    pub events: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub stream: String,
}

impl StreamReport {
    pub fn pin(&self) -> DataPin {
        DataPin {
            events: self.events,
            first_seq: self.start_seq,
            last_seq: self.last_seq,
            digest: self.digest.clone(),
            stream: self.stream.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub streams: Vec<StreamReport>,
}

impl ReplayReport {
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.streams.iter().flat_map(|s| &s.findings)
    }

    pub fn is_clean(&self) -> bool {
        self.findings().next().is_none()
    }

    pub fn events(&self) -> u64 {
        self.streams.iter().map(|s| s.events).sum()
    }
}
