//! What the engine is made of: its parts, each stream's modules and state, the commands.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::Serialize;
use serde_json::{Value, json};
use tapedeck_guest::codec::EventBatchWriter;

use crate::decision::Decision;
use crate::event::StreamEncoder;
use crate::live::exec::ExecIds;
use crate::live::metrics::LiveMetrics;
use crate::recorder::protocol::Reply;
use crate::recorder::{Submitter, WalReader};
use crate::runtime::{Instance, Module, Runtime};
use crate::store::StoreUri;
use crate::venue::{Venue, VenueConfig};

/// A module ready to run: compiled, with the config it runs with.
#[derive(Debug)]
pub struct Loaded {
    pub module: Module,
    /// SHA-256 of the file as uploaded (what `/modules` pins).
    pub sha256: String,
    pub config: String,
}

impl Loaded {
    pub fn describe(&self) -> Value {
        let info = self.module.info();
        json!({
            "name": info.name,
            "version": info.version,
            "sha256": self.sha256,
            "config": self.config,
        })
    }
}

/// What the control API asks of the engine.
#[derive(Debug)]
pub enum Command {
    Status,
    /// Make this module the active one (state handed over or caught up).
    Swap(Arc<Loaded>),
    /// Run this module beside the active one, comparing decisions.
    Shadow(Arc<Loaded>),
    /// Make the shadow the active module (it already has the state).
    Promote,
    /// Back to the module active before the last swap.
    Rollback,
}

pub type CommandReply = std::result::Result<Value, String>;

/// A command and where its answer goes.
#[derive(Debug)]
pub struct Request {
    pub command: Command,
    pub reply: tokio::sync::oneshot::Sender<CommandReply>,
}

/// What the engine needs from the process around it.
pub struct EngineParts {
    pub rt: Arc<Runtime>,
    pub session: String,
    pub streams: String,
    pub batch: usize,
    pub venue_name: String,
    pub venue: VenueConfig,
    pub active: Arc<Loaded>,
    pub reader: WalReader,
    pub submit: Submitter,
    /// The first sink's store: where catch-up reads what the WAL no longer holds.
    pub catch_up_store: StoreUri,
    pub wal_dir: std::path::PathBuf,
    /// Where the session's modules are kept by sha256 (a restart resumes with them).
    pub modules_dir: std::path::PathBuf,
    /// The settings the `live_started` audit event records.
    pub started: Value,
    /// Orders go to an executor through it instead of the paper venue.
    pub order_sink: Option<crate::live::sink::OrderSink>,
    /// Events kept per stream for catch-ups (see `StreamRun::recent`).
    pub recent_events: usize,
    pub commands: std::sync::mpsc::Receiver<Request>,
    pub metrics: Arc<LiveMetrics>,
    pub stop: Arc<AtomicBool>,
}

/// One module running on one stream.
pub(super) struct Slot {
    pub(super) loaded: Arc<Loaded>,
    pub(super) inst: Instance,
    /// The last seq before it took over on this stream.
    pub(super) since: u64,
}

/// How a module got the state it took over a stream with: part of the session's record, so
/// a replay of the session does the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum Handoff {
    /// `restore` of the module active until then's `snapshot`.
    Snapshot,
    /// Its own state from when it last left the stream (at `from_seq`), caught up since.
    Saved { from_seq: u64, events: u64 },
    /// Caught up from the stream's start.
    CatchUp { events: u64 },
}

/// A module's instance made ready to take over a stream.
pub(super) struct Prepared {
    pub(super) inst: Instance,
    pub(super) handoff: Handoff,
    /// The active module's snapshot at the switch (what a rollback restores).
    pub(super) snapshot: Option<Vec<u8>>,
}

/// A module's state on a stream when it stopped being active there: what a swap back to it
/// or a rollback restores, then catches up from `seq`.
pub(super) struct Saved {
    pub(super) sha256: String,
    pub(super) config: String,
    pub(super) snapshot: Vec<u8>,
    pub(super) seq: u64,
}

/// Saved states kept per stream (the newest modules').
pub const SAVED: usize = 4;

#[derive(Debug, Default, Clone, Serialize)]
pub(super) struct Divergence {
    pub(super) compared_batches: u64,
    pub(super) divergent_batches: u64,
    /// The first divergent decision: its seq, and what each module decided there.
    pub(super) first: Option<Value>,
}

pub(super) struct StreamRun {
    pub(super) key: String,
    pub(super) id: u32,
    pub(super) encoder: StreamEncoder,
    pub(super) writer: EventBatchWriter,
    pub(super) spare: Vec<u8>,
    pub(super) times: Vec<i64>,
    pub(super) first_in_batch: u64,
    /// The batch's first event's ingest time (for input-to-decision latency).
    pub(super) first_ingest: i64,
    pub(super) symbols: BTreeMap<u32, String>,
    /// A symbol arrived the modules do not know yet.
    pub(super) new_symbols: bool,
    /// None: the strategy is down here (it trapped and there was nothing to roll back to).
    pub(super) active: Option<Slot>,
    pub(super) shadow: Option<Slot>,
    pub(super) shadow_seen: Divergence,
    pub(super) saved: Vec<Saved>,
    pub(super) venue: Venue,
    pub(super) ids: ExecIds,
    /// The last seq the modules have been given (or caught up to).
    pub(super) applied: u64,
    /// Decisions on events up to here were executed before a restart: they are not again.
    pub(super) silent_until: u64,
    /// The last events applied, as guest records (seq, time, record): a catch-up over them
    /// (a swap back to a module that left the stream recently) reads no store.
    pub(super) recent: VecDeque<(u64, i64, Box<[u8]>)>,
    /// The last seq of each batch run since they were last recorded (`live_batches`): a
    /// replay of the session cuts its batches where these did.
    pub(super) batch_ends: Vec<u64>,
    pub(super) events: u64,
    pub(super) decisions: u64,
    pub(super) orders: u64,
    pub(super) fills: u64,
    pub(super) findings: Vec<Value>,
}

pub struct Engine {
    pub(super) p: EngineParts,
    pub(super) runs: BTreeMap<String, StreamRun>,
    /// The module active now (new streams start with it), the one before (rollbacks go to
    /// it), the shadow.
    pub(super) active: Arc<Loaded>,
    pub(super) previous: Option<Arc<Loaded>>,
    pub(super) shadow: Option<Arc<Loaded>>,
    /// Exec events submitted and not yet acknowledged, with the order sink's line for each
    /// (sent once its event is durable).
    pub(super) in_flight: VecDeque<InFlight>,
    pub(super) decided: Vec<Decision>,
    pub(super) shadow_decided: Vec<Decision>,
    pub(super) swaps: u64,
    pub(super) rollbacks: u64,
    pub(super) resume: Resume,
}

pub(super) struct InFlight {
    pub(super) replies: tokio::sync::oneshot::Receiver<Vec<Reply>>,
    pub(super) lines: Vec<Option<Vec<u8>>>,
}

/// Exec submissions waiting for their acknowledgement, at most (then the engine waits).
pub(super) const IN_FLIGHT: usize = 256;
/// Findings kept per stream for `/status` (all are in the audit stream).
pub(super) const FINDINGS: usize = 100;
/// Batch ends recorded in one `live_batches` event, at most.
pub(super) const BATCH_ENDS: usize = 256;
/// WAL records read before the pending batches are run, at most.
pub(super) const BURST: usize = 8192;

/// What the session did before this process started (it may have been killed): per stream,
/// the last seq whose decisions were executed and the module it ran last; the module active
/// last. Read from the session's audit and exec streams in the store and the WAL.
#[derive(Debug, Default)]
pub(super) struct Resume {
    pub(super) executed: std::collections::HashMap<String, u64>,
    pub(super) module: std::collections::HashMap<String, (String, String)>,
    pub(super) active: Option<(String, String)>,
}
