//! Import of Binance captures: lines of `<local_ts_ns> <json>`, the JSON being a raw
//! combined-stream message (`depthUpdate`, `bookTicker`, `trade`) or a REST depth snapshot
//! (`{"lastUpdateId":..,"bids":..,"asks":..}`, no wrapper), into any [`Store`].
//!
//! The book is kept in sync the documented way ([`sync`]). A break is a gap: it is recorded in
//! the stream (a `custom` event of type `book_gap`, which the `book` projector treats as "book
//! unknown"), reported as a finding, and the book resyncs at the next snapshot.
//!
//! Nothing read is lost, whatever the input:
//! - An import split anywhere equals one whole import. Each append of a stream's events
//!   carries, in the same batch, a `custom` event `import_state` on `import:binance-<market>:
//!   <SYMBOL>` holding the stream's [`SyncState`] (buffered diffs, last update id, synced or
//!   not, how far the capture was read). The next import starts from it, skipping exactly the
//!   lines read before; a state that does not match its stream (written by an older importer,
//!   or a crash between two transactions) gives way to the old rule: continue from the last
//!   stored book update, skip lines recorded at or before the stream's last event.
//! - A line that cannot be parsed, or is not UTF-8, is quarantined in the store
//!   (`quarantine/` of a file store, the `quarantine` table in PostgreSQL) with its file and
//!   line number (and its raw bytes in hex when it is not text); the import goes on.
//! - A gzip stream that ends early or is corrupt: every line before the damage is imported,
//!   the incomplete last line is quarantined, and the damage is an [`InputFinding`].
//!
//! Lines are assumed to come in capture-time order per stream (a recorder's clock), which is
//! what lets a later import know which lines it has seen.

pub mod book;
pub mod message;
mod parse;
mod summary;
pub mod sync;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::event::{Body, Envelope};
use crate::store::{SeqRange, StreamInfo};

use message::{Head, Payload, Snapshot, capture_line, gap_body};
pub use parse::Market;
use parse::hex;
pub use summary::{GapFinding, ImportSummary, InputFinding};
use sync::{Diff, Step};
pub use sync::{IMPORT_STATE, SyncState};

use crate::store::Store;

const APPEND_BATCH: usize = 8192;

/// Which lines of a stream an earlier import read (skipped by this one).
#[derive(Debug, Clone, Copy, Default)]
enum Resume {
    /// None: a new stream.
    #[default]
    Fresh,
    /// From a stored [`SyncState`]: lines before `until`, and the first `at_until` lines at
    /// `until`.
    State { until: i64, at_until: u64 },
    /// A stream imported without a usable state: lines at or before its last event.
    Legacy { until: i64 },
}

/// Per stream: the next seq, the book's sync state, and what to skip.
#[derive(Debug, Default)]
struct StreamState {
    next_seq: u64,
    resume: Resume,
    sync: SyncState,
    /// Lines were read since the state was last stored.
    dirty: bool,
    /// The last seq of the stream's `import:` stream.
    state_seq: u64,
}

pub struct Importer<'s> {
    store: &'s mut dyn Store,
    market: Option<Market>,
    symbol: Option<String>,
    streams: BTreeMap<String, StreamState>,
    out: Vec<Envelope>,
    summary: ImportSummary,
}

/// Opens a capture, gunzipped if its name ends in `.gz` (and says whether it does).
pub fn open_capture(path: &Path) -> Result<(Box<dyn Read + Send>, bool)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let gz = path.extension().is_some_and(|e| e == "gz");
    let reader: Box<dyn Read + Send> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok((reader, gz))
}

/// The market-data stream of a symbol (`md:binance-spot:BTCUSDT`).
pub fn stream_key(market: Market, symbol: &str) -> String {
    format!(
        "md:binance-{}:{}",
        market.name(),
        symbol.to_ascii_uppercase()
    )
}

/// The stream holding the import state of market-data stream `key`
/// (`md:binance-spot:BTCUSDT` → `import:binance-spot:BTCUSDT`).
pub fn state_stream(key: &str) -> String {
    format!("import:{}", key.strip_prefix("md:").unwrap_or(key))
}

impl<'s> Importer<'s> {
    /// `market` and `symbol` override what the capture says (needed only when it cannot say).
    pub fn new(store: &'s mut dyn Store, market: Option<Market>, symbol: Option<String>) -> Self {
        Importer {
            store,
            market,
            symbol,
            streams: BTreeMap::new(),
            out: Vec::new(),
            summary: ImportSummary::default(),
        }
    }

    /// Imports one capture (gzip or plain), continuing streams from earlier files and from
    /// what the store already holds. A damaged gzip stream is a finding, not an error: `Err`
    /// only when the file cannot be opened or read, or the store fails.
    pub fn import_file(&mut self, path: &Path) -> Result<()> {
        let (reader, gz) = open_capture(path)?;
        let name = path.display().to_string();
        let mut reader = BufReader::with_capacity(1 << 20, reader);
        let (mut buf, mut lineno, mut bytes) = (Vec::new(), 0u64, 0u64);
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    bytes += n as u64;
                    lineno += 1;
                    self.import_bytes(&name, lineno, &buf)?;
                }
                // What the decoder could not decode: everything before it is in, and so is
                // the incomplete last line (in `buf`), quarantined.
                Err(e)
                    if gz
                        && matches!(
                            e.kind(),
                            ErrorKind::UnexpectedEof
                                | ErrorKind::InvalidInput
                                | ErrorKind::InvalidData
                        ) =>
                {
                    let lines = lineno;
                    if !buf.is_empty() {
                        bytes += buf.len() as u64;
                        self.summary.lines += 1;
                        let why = "incomplete last line of a truncated gzip stream";
                        self.quarantine_raw(&name, lineno + 1, &buf, why)?;
                    }
                    let message = match e.kind() {
                        ErrorKind::UnexpectedEof => "truncated gzip stream".to_string(),
                        _ => format!("corrupt gzip stream: {e}"),
                    };
                    self.summary.truncated.push(InputFinding {
                        file: name.clone(),
                        lines,
                        bytes,
                        message,
                    });
                    break;
                }
                Err(e) => {
                    self.flush()?;
                    return Err(Error::io(path, e));
                }
            }
        }
        self.flush()
    }

    /// One line of a capture as read, its newline included or not: [`Importer::import_line`]
    /// if it is UTF-8, else quarantined with its bytes in hex.
    pub fn import_bytes(&mut self, file: &str, lineno: u64, line: &[u8]) -> Result<()> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match std::str::from_utf8(line) {
            Ok(text) => self.import_line(file, lineno, text),
            Err(e) => {
                self.summary.lines += 1;
                let why = format!("invalid UTF-8 at byte {}", e.valid_up_to());
                self.quarantine_raw(file, lineno, line, &why)
            }
        }
    }

    /// One line of a capture, as `import_file` takes it: its events buffered for the store
    /// (appended in batches; `finish` appends the rest), or the line quarantined if it cannot
    /// be parsed. `file` and `lineno` are what a quarantine record and a gap finding name.
    /// `Err` only when the store fails. (The `binance_line` fuzz target drives this.)
    pub fn import_line(&mut self, file: &str, lineno: u64, line: &str) -> Result<()> {
        self.summary.lines += 1;
        if line.trim().is_empty() {
            return Ok(());
        }
        if let Err(message) = self.line(file, lineno, line) {
            self.quarantine(file, lineno, line, &message)?;
        }
        if self.out.len() >= APPEND_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<ImportSummary> {
        self.flush()?;
        for st in self.streams.values() {
            self.summary.unsynced_diffs += st.sync.pending.len() as u64;
        }
        Ok(self.summary)
    }

    fn quarantine(&mut self, file: &str, line: u64, text: &str, error: &str) -> Result<()> {
        let rec = serde_json::json!({ "file": file, "line": line, "error": error, "text": text });
        self.store_quarantined(&rec)
    }

    /// A line that is not (all) text: lossy text for people, hex for the exact bytes.
    fn quarantine_raw(&mut self, file: &str, line: u64, raw: &[u8], error: &str) -> Result<()> {
        let rec = serde_json::json!({
            "file": file,
            "line": line,
            "error": error,
            "text": String::from_utf8_lossy(raw),
            "hex": hex(raw),
        });
        self.store_quarantined(&rec)
    }

    fn store_quarantined(&mut self, rec: &Value) -> Result<()> {
        self.summary.quarantined += 1;
        self.summary.quarantined_to = Some(self.store.quarantine("import-binance", rec)?);
        Ok(())
    }

    /// Appends the buffered events, and after them the state of each stream read since the
    /// last append, in one call: a later import finds the state that goes with the events.
    fn flush(&mut self) -> Result<()> {
        let events = self.out.len() as u64;
        let mut checkpoints = 0;
        for (key, st) in &mut self.streams {
            if !st.dirty {
                continue;
            }
            st.dirty = false;
            st.sync.seq = st.next_seq - 1;
            st.state_seq += 1;
            let t = st.sync.read_until.unwrap_or_default();
            let data = serde_json::to_value(&st.sync).expect("a sync state serializes");
            let body = Body::Custom {
                type_name: IMPORT_STATE.into(),
                data,
            };
            self.out.push(Envelope::new(
                &state_stream(key),
                st.state_seq,
                t,
                None,
                body,
            ));
            checkpoints += 1;
        }
        if self.out.is_empty() {
            return Ok(());
        }
        self.store.append(&self.out)?;
        self.summary.events += events;
        self.summary.checkpoints += checkpoints;
        self.out.clear();
        Ok(())
    }

    /// The state of a stream, picking up where the store left it.
    fn state(&mut self, key: &str) -> Result<&mut StreamState> {
        if !self.streams.contains_key(key) {
            let st = self.load(key)?;
            self.streams.insert(key.to_string(), st);
        }
        Ok(self.streams.get_mut(key).unwrap())
    }

    /// The stored state of stream `key`: its import state when it matches the stream, else
    /// derived from the stream's events.
    fn load(&self, key: &str) -> Result<StreamState> {
        let streams = self.store.streams()?;
        let info = |k: &str| streams.iter().find(|s| s.key == k);
        let last_seq = info(key).map_or(0, |s| s.last_seq);
        let mut st = StreamState {
            next_seq: last_seq + 1,
            ..StreamState::default()
        };
        let skey = state_stream(key);
        if let Some(s) = info(&skey) {
            st.state_seq = s.last_seq;
            if let Some(sync) = self.stored_state(s)?.filter(|sync| sync.seq == last_seq) {
                if let Some(until) = sync.read_until {
                    st.resume = Resume::State {
                        until,
                        at_until: sync.read_at_until,
                    };
                }
                st.sync = sync;
                return Ok(st);
            }
        }
        if info(key).is_none() {
            return Ok(st);
        }
        // Continue the book from its last update id, unless it ended on a gap.
        let (mut until, mut last_u) = (i64::MIN, None);
        self.store.read(key, SeqRange::ALL, &mut |e| {
            until = until.max(e.ingested_at);
            match e.body {
                Body::BookSnapshot { update_id, .. } => last_u = Some(update_id),
                Body::BookDelta {
                    final_update_id, ..
                } => last_u = Some(final_update_id),
                Body::Custom { ref type_name, .. } if type_name == "book_gap" => last_u = None,
                _ => {}
            }
            Ok(())
        })?;
        st.resume = Resume::Legacy { until };
        st.sync = SyncState::legacy(last_u);
        Ok(st)
    }

    /// The last `import_state` of a state stream, if it holds one that parses.
    fn stored_state(&self, s: &StreamInfo) -> Result<Option<SyncState>> {
        let mut found = None;
        let last = SeqRange {
            from: s.last_seq,
            to: s.last_seq,
        };
        self.store.read(&s.key, last, &mut |e| {
            if let Body::Custom { type_name, data } = e.body
                && type_name == IMPORT_STATE
            {
                found = serde_json::from_value(data).ok();
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// Whether a line of `key` recorded at `local` was read by an earlier import (counted and
    /// skipped if so); if not, it is read now.
    fn imported_before(&mut self, key: &str, local: i64) -> std::result::Result<bool, String> {
        let st = self.state(key).map_err(|e| e.to_string())?;
        let before = match &mut st.resume {
            Resume::Fresh => false,
            Resume::Legacy { until } => local <= *until,
            Resume::State { until, at_until } => {
                local < *until
                    || (local == *until && *at_until > 0 && {
                        *at_until -= 1;
                        true
                    })
            }
        };
        if before {
            self.summary.already_stored += 1;
        } else {
            st.sync.read(local);
            st.dirty = true;
        }
        Ok(before)
    }

    fn emit(&mut self, key: &str, occurred_at: i64, ingested_at: i64, body: Body) -> Result<u64> {
        let symbol = key.rsplit(':').next().map(str::to_string);
        let st = self.state(key)?;
        let seq = st.next_seq;
        st.next_seq += 1;
        let mut e = Envelope::new(key, seq, occurred_at, symbol.as_deref(), body);
        e.ingested_at = ingested_at;
        *self
            .summary
            .by_stream
            .entry(key.to_string())
            .or_default()
            .entry(e.body.event_type().to_string())
            .or_default() += 1;
        self.out.push(e);
        Ok(seq)
    }

    fn key(&self, market: Market, symbol: &str) -> String {
        stream_key(market, symbol)
    }

    fn line(&mut self, file: &str, lineno: u64, line: &str) -> std::result::Result<(), String> {
        let (local, json) = capture_line(line)?;
        let v: Value = serde_json::from_str(json).map_err(|e| format!("bad JSON: {e}"))?;
        if let Some(snap) = Snapshot::parse(&v)? {
            let market = self.market.unwrap_or(Market::Spot);
            let symbol = self
                .symbol
                .clone()
                .ok_or("a REST snapshot before any message naming the symbol: pass --symbol")?;
            let key = self.key(market, &symbol);
            if self.imported_before(&key, local)? {
                return Ok(());
            }
            return self.snapshot(&key, local, snap).map_err(|e| e.to_string());
        }
        let head = Head::parse(&v)?;
        if self.symbol.is_none() {
            self.symbol = Some(head.symbol.to_string());
        }
        let market = self.market.unwrap_or(if head.futures {
            Market::Usdm
        } else {
            Market::Spot
        });
        if self.market.is_none() && (head.kind == Some("depthUpdate") || head.futures) {
            self.market = Some(market);
        }
        let key = self.key(market, head.symbol);
        if self.imported_before(&key, local)? {
            return Ok(());
        }
        let done = match head.payload()? {
            Payload::Diff { time, diff } => {
                self.diff(&key, file, lineno, time.unwrap_or(local), local, diff)
            }
            Payload::Event { time, body } => self
                .emit(&key, time.unwrap_or(local), local, body)
                .map(drop),
        };
        done.map_err(|e| e.to_string())
    }

    fn snapshot(&mut self, key: &str, local: i64, snap: Snapshot) -> Result<()> {
        self.summary.snapshots += 1;
        let id = snap.last_update_id;
        self.emit(key, local, local, snap.into_body())?;
        // Replay buffered diffs against the new snapshot.
        for p in self.state(key)?.sync.snapshot(id) {
            self.diff(key, "(buffered)", 0, p.time, p.local, p.diff)?;
        }
        Ok(())
    }

    fn diff(
        &mut self,
        key: &str,
        file: &str,
        line: u64,
        t: i64,
        local: i64,
        d: Diff,
    ) -> Result<()> {
        match self.state(key)?.sync.diff(d, t, local) {
            Step::Apply(d) => {
                self.emit(key, t, local, d.into_body())?;
            }
            Step::Gap { expected, got } => {
                let seq = self.emit(key, t, local, gap_body(expected, got))?;
                self.summary.gaps.push(GapFinding {
                    stream: key.to_string(),
                    file: file.to_string(),
                    line,
                    expected,
                    got,
                    seq,
                });
            }
            Step::Superseded => self.summary.superseded_diffs += 1,
            Step::Buffered { overflowed } => {
                self.summary.unsynced_diffs += u64::from(overflowed);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
