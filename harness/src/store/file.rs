//! The embedded file store: a directory, no server.
//!
//! ```text
//! DIR/tapedeck-store.json                          format marker
//! DIR/writer.lock                                  the writer lock (see `lock.rs`)
//! DIR/events/day=YYYY-MM-DD/part-NNNNNN.jsonl      the log: one envelope per line, append-only
//! DIR/index/                                       the Parquet index, derived (see `index.rs`)
//! DIR/snapshots/<stream>/<seq>.<projector>.json    stored projector states (replay anchors)
//! DIR/quarantine/                                  bytes set aside instead of dropped
//! ```
//! Stream keys and projector names in paths are [`crate::names::file_name`]s.
//! The log is the source of truth (seed 002). Every append is one write per day part followed
//! by `fsync`; parts are rotated by size.
//!
//! Invariants:
//! - **One writer.** A store writes only while holding the writer lock ([`FileStoreOptions::
//!   lock_timeout`] bounds the wait): [`FileStore::create`] takes it at once, a store from
//!   [`FileStore::open`] on its first write; either holds it until dropped. Whoever takes it
//!   first rereads the log, so an append always continues what is on disk.
//! - **Readers never wait and never fail on a write in flight**: they take no lock and treat
//!   an unterminated last line as not yet written. A line torn by a crash is moved to
//!   `quarantine/` by the next writer, under the lock, and by nobody else.
//! - **Day partition.** An event goes into the day partition `max(day of its ingested_at, the
//!   day partition of its stream's previous event)`, and its envelope keeps the real
//!   `ingested_at`. So each stream's events lie in seq order when the log is read day by day,
//!   part by part, line by line, whatever the ingest times (clock skew, late data): reads are
//!   by seq, as in the PostgreSQL store. Partitions are by ingest day otherwise.
//! - **Derived files never block the store.** An index that is missing, stale (by content
//!   checksum of the log parts) or unusable (bad manifest, missing or changed files) is not
//!   used: reads go to the log, with a warning when it is unusable. Only `*.json` files of a
//!   snapshot folder are snapshots (never a `*.tmpNNN` left by an interrupted write).

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use super::dirs::{is_snapshot_file, sorted_entries};
use super::index_state::IndexState;
use super::lock::WriterLock;
use super::log::{self, LogView, io};
use super::{
    AppendReport, EventSink, EventSource, SeqRange, StoredSnapshot, StreamInfo, check_seqs,
};
use crate::error::{Error, Result};
use crate::event::Envelope;
use crate::names::file_name;
use crate::time::day_of;

const MARKER: &str = "tapedeck-store.json";

#[derive(Debug, Clone)]
pub struct FileStoreOptions {
    /// A part file is closed once it reaches this size.
    pub max_part_bytes: u64,
    /// How long a writer waits for another process's writer lock before it fails with
    /// [`Error::StoreLocked`]; zero tries once.
    pub lock_timeout: Duration,
}

impl Default for FileStoreOptions {
    fn default() -> Self {
        FileStoreOptions {
            max_part_bytes: 128 << 20,
            lock_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
pub struct FileStore {
    root: PathBuf,
    opts: FileStoreOptions,
    /// Stream summaries, from one scan of the log (on first use).
    view: OnceLock<LogView>,
    /// Whether the index matches the log (checked on first use).
    index: OnceLock<IndexState>,
    /// The writer lock, once this store has written (or was created to write).
    lock: Option<WriterLock>,
    /// The lock's generation `view` was read at.
    seen: u64,
}

impl FileStore {
    /// Opens an existing store to read (it takes the writer lock on its first write).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        Self::open_with(root, FileStoreOptions::default())
    }

    /// [`FileStore::open`] with options for its writes.
    pub fn open_with(root: impl Into<PathBuf>, opts: FileStoreOptions) -> Result<Self> {
        let root = root.into();
        if !root.join(MARKER).is_file() {
            return Err(Error::BadStoreUri {
                uri: root.display().to_string(),
                reason: format!(
                    "no Tapedeck file store here (no {MARKER}); `tapedeck import ... --store DIR` creates one"
                ),
            });
        }
        Ok(FileStore {
            root,
            opts,
            view: OnceLock::new(),
            index: OnceLock::new(),
            lock: None,
            seen: 0,
        })
    }

    /// Opens a store for appending, creating it if needed: takes the writer lock (waiting up
    /// to `opts.lock_timeout`) and sets aside any torn write.
    pub fn create(root: impl Into<PathBuf>, opts: FileStoreOptions) -> Result<Self> {
        let root = root.into();
        io(&root, fs::create_dir_all(root.join("events")))?;
        let marker = root.join(MARKER);
        if !marker.is_file() {
            crate::fs::write_atomic(
                &marker,
                b"{\"format\":\"tapedeck-file-store\",\"version\":1}\n",
            )?;
        }
        let mut store = Self::open_with(root, opts)?;
        store.writer()?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the writer lock if this store does not hold it yet (then repairs torn tails), and
    /// forgets what it knew of the log if another store of this process wrote since.
    pub(super) fn writer(&mut self) -> Result<WriterLock> {
        let lock = match &self.lock {
            Some(l) => l.clone(),
            None => {
                let l = WriterLock::acquire(&self.root, self.opts.lock_timeout)?;
                for part in log::parts(&self.root)? {
                    if log::quarantine_torn_tail(&self.root, &part)?.is_some() {
                        l.wrote();
                    }
                }
                self.view.take();
                self.index.take();
                self.seen = l.generation();
                self.lock = Some(l.clone());
                l
            }
        };
        if lock.generation() != self.seen {
            self.view.take();
            self.index.take();
            self.seen = lock.generation();
        }
        Ok(lock)
    }

    /// Records a write of the log made under `lock`.
    pub(super) fn wrote(&mut self, lock: &WriterLock) {
        self.seen = lock.wrote();
        // The log moved on: whether the index still matches is decided afresh.
        self.index.take();
    }

    /// Every part file, oldest first.
    #[cfg(test)]
    fn parts(&self) -> Result<Vec<PathBuf>> {
        log::parts(&self.root)
    }

    /// Calls `f` on every event of the log in log order, with its file, line and day, until
    /// `f` says it has seen enough (`Ok(false)`): the rest of the log is not read.
    fn scan(
        &self,
        filter: Option<&str>,
        f: &mut dyn FnMut(Envelope, &Path, u64, &str) -> Result<bool>,
    ) -> Result<()> {
        let needle =
            filter.map(|s| format!("\"stream_key\":{}", serde_json::to_string(s).unwrap()));
        let mut more = true;
        for (day, dir) in log::days(&self.root)? {
            for part in log::parts_of(&dir)? {
                if !more {
                    return Ok(());
                }
                log::lines(&part, &mut |line, lineno| {
                    if !more {
                        return Ok(());
                    }
                    if let Some(n) = &needle
                        && std::str::from_utf8(line).is_ok_and(|l| !l.contains(n.as_str()))
                    {
                        return Ok(());
                    }
                    let e: Envelope =
                        serde_json::from_slice(line).map_err(|e| Error::Corrupt {
                            path: part.clone(),
                            line: lineno,
                            message: format!(
                                "not an event envelope: {e}; `tapedeck fsck --store DIR --repair` sets it aside"
                            ),
                        })?;
                    more = f(e, &part, lineno, &day)?;
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    fn view(&self) -> Result<&LogView> {
        if let Some(v) = self.view.get() {
            return Ok(v);
        }
        // An up-to-date index answers without parsing the log.
        if let Some(m) = self.fresh_index()? {
            let v = super::index::log_view(&self.root, m)?;
            return Ok(self.view.get_or_init(|| v));
        }
        let mut v = LogView::default();
        self.scan(None, &mut |e, path, line, day| {
            let prev = v.infos.get(&e.stream_key).map_or(0, |i| i.last_seq);
            if e.seq != prev + 1 {
                let message = if prev == 0 {
                    format!("stream {} starts at seq {}, not 1", e.stream_key, e.seq)
                } else {
                    format!("stream {} seq {} follows seq {prev}", e.stream_key, e.seq)
                };
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    line,
                    message: format!("{message}; `tapedeck fsck --store DIR` says more"),
                });
            }
            v.infos
                .entry(e.stream_key.clone())
                .or_insert_with(|| StreamInfo::new(&e))
                .add(&e);
            v.last_day.insert(e.stream_key, day.to_string());
            Ok(true)
        })?;
        Ok(self.view.get_or_init(|| v))
    }

    fn snapshot_dir(&self, stream: &str) -> PathBuf {
        self.root.join("snapshots").join(file_name(stream))
    }

    /// Whether the index matches the log, and if not why (see [`IndexState`]).
    pub fn index_state(&self) -> Result<&IndexState> {
        if self.index.get().is_none() {
            let s = super::index_state::state(&self.root)?;
            if let IndexState::Unusable(why) = &s {
                eprintln!(
                    "warning: {}: the index is unusable ({why}); reading the log instead. `tapedeck index rebuild --store {}` rebuilds it",
                    self.root.display(),
                    self.root.display()
                );
            }
            let _ = self.index.set(s);
        }
        Ok(self.index.get().expect("just set"))
    }

    /// The index manifest when the index is up to date with the log and usable.
    pub fn fresh_index(&self) -> Result<Option<&super::index::Manifest>> {
        Ok(match self.index_state()? {
            IndexState::Fresh(m) => Some(m),
            _ => None,
        })
    }

    /// Rebuilds the index (see [`super::index::rebuild`]) under this store's writer lock.
    pub fn rebuild_index(&mut self, since: Option<&str>) -> Result<super::index::RebuildSummary> {
        self.writer()?;
        let s = super::index::rebuild_locked(&self.root, since)?;
        self.index.take();
        Ok(s)
    }

    /// Stored snapshot files of `stream`: `<seq>.<projector>.json` only.
    pub(super) fn snapshot_files(&self, stream: &str) -> Result<Vec<PathBuf>> {
        Ok(sorted_entries(&self.snapshot_dir(stream))?
            .into_iter()
            .filter(|p| is_snapshot_file(p))
            .collect())
    }
}

impl EventSource for FileStore {
    fn streams(&self) -> Result<Vec<StreamInfo>> {
        Ok(self.view()?.infos.values().cloned().collect())
    }

    fn read(
        &self,
        stream: &str,
        range: SeqRange,
        f: &mut dyn FnMut(Envelope) -> Result<()>,
    ) -> Result<()> {
        let mut last = 0;
        self.scan(Some(stream), &mut |e, path, line, _| {
            if e.stream_key != stream {
                return Ok(true);
            }
            if e.seq != last + 1 {
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    line,
                    message: format!("stream {stream} seq {} follows seq {last}", e.seq),
                });
            }
            last = e.seq;
            range.contains(e.seq).then(|| f(e)).transpose()?;
            // Past the range's end the log has nothing more for this read.
            Ok(last < range.to)
        })
    }

    fn snapshots(&self, stream: &str) -> Result<Vec<StoredSnapshot>> {
        let mut out = Vec::new();
        for path in self.snapshot_files(stream)? {
            let bytes = io(&path, fs::read(&path))?;
            let s: StoredSnapshot = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                path: path.clone(),
                line: 1,
                message: format!("not a stored snapshot: {e}"),
            })?;
            out.push(s);
        }
        out.sort_by(|a, b| (a.seq, &a.projector).cmp(&(b.seq, &b.projector)));
        Ok(out)
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn read_records(
        &self,
        stream: &str,
        range: SeqRange,
        f: &mut super::RecordSink<'_>,
    ) -> Result<()> {
        match self.fresh_index()? {
            Some(m) => super::index::read_records(&self.root, m, stream, range, f),
            None => super::records_from_envelopes(self, stream, range, f),
        }
    }

    fn instruments(&self, stream: &str) -> Result<BTreeMap<u32, String>> {
        match self.fresh_index()? {
            Some(m) => super::index_instruments::instruments(&self.root, m, stream),
            None => super::instruments_from_envelopes(self, stream),
        }
    }
}

impl EventSink for FileStore {
    fn append(&mut self, events: &[Envelope]) -> Result<AppendReport> {
        let lock = self.writer()?;
        let view = self.view()?;
        let last: BTreeMap<String, u64> = view
            .infos
            .iter()
            .map(|(k, v)| (k.clone(), v.last_seq))
            .collect();
        check_seqs(&last, events)?;
        // One buffer per day partition (see the module doc), each written with one call and
        // synced, oldest day first: a reader meeting a write half done sees a prefix of each
        // stream.
        let mut day_of_stream: BTreeMap<&str, String> = BTreeMap::new();
        let mut by_day: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for e in events {
            let mut day = day_of(e.ingested_at);
            let prev = day_of_stream
                .get(e.stream_key.as_str())
                .or_else(|| view.last_day.get(&e.stream_key));
            if let Some(p) = prev
                && *p > day
            {
                day = p.clone();
            }
            day_of_stream.insert(&e.stream_key, day.clone());
            let buf = by_day.entry(day).or_default();
            serde_json::to_writer(&mut *buf, e).map_err(|err| Error::BadEvent {
                stream: e.stream_key.clone(),
                seq: e.seq,
                message: err.to_string(),
            })?;
            buf.push(b'\n');
        }
        let day_of_stream: BTreeMap<String, String> = day_of_stream
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        for (day, buf) in by_day {
            let part = log::part_for(
                &self.root.join("events").join(format!("day={day}")),
                self.opts.max_part_bytes,
            )?;
            let mut f = io(
                &part,
                OpenOptions::new().create(true).append(true).open(&part),
            )?;
            io(&part, f.write_all(&buf))?;
            io(&part, f.sync_data())?;
        }
        let mut view = self.view.take().unwrap_or_default();
        for e in events {
            view.infos
                .entry(e.stream_key.clone())
                .or_insert_with(|| StreamInfo::new(e))
                .add(e);
        }
        view.last_day.extend(day_of_stream);
        self.wrote(&lock);
        let _ = self.view.set(view);
        Ok(AppendReport::all_stored(events))
    }

    fn put_snapshot(&mut self, s: &StoredSnapshot) -> Result<()> {
        self.writer()?;
        let dir = self.snapshot_dir(&s.stream);
        let path = dir.join(format!("{:020}.{}.json", s.seq, file_name(&s.projector)));
        let mut bytes = serde_json::to_vec_pretty(s).expect("snapshot serializes");
        bytes.push(b'\n');
        crate::fs::write_atomic(&path, &bytes)
    }

    fn quarantine(&mut self, source: &str, record: &serde_json::Value) -> Result<String> {
        self.writer()?;
        let dir = self.root.join("quarantine");
        io(&dir, fs::create_dir_all(&dir))?;
        let path = dir.join(format!("{}.jsonl", file_name(source)));
        let mut f = io(
            &path,
            fs::OpenOptions::new().create(true).append(true).open(&path),
        )?;
        io(&path, writeln!(f, "{record}"))?;
        io(&path, f.sync_data())?;
        Ok(path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Body;

    fn ev(stream: &str, seq: u64, t: i64) -> Envelope {
        Envelope::new(
            stream,
            seq,
            t,
            Some("X"),
            Body::OrderCancelled {
                client_order_id: seq,
            },
        )
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tapedeck-fs-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn appends_are_gapless_per_stream_and_read_back_in_order() {
        let dir = tmp("gapless");
        let day = 86_400_000_000_000;
        let mut s = FileStore::create(
            &dir,
            FileStoreOptions {
                max_part_bytes: 400,
                ..FileStoreOptions::default()
            },
        )
        .unwrap();
        s.append(&[ev("a", 1, 0), ev("b", 1, 0), ev("a", 2, day)])
            .unwrap();
        let err = s.append(&[ev("a", 3, day), ev("a", 5, day)]).unwrap_err();
        assert!(
            err.to_string()
                .contains("stream a: seq 5 does not follow the last seq (expected 4)"),
            "{err}"
        );
        let err = s.append(&[ev("c", 2, day)]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::SeqGap {
                    expected: 1,
                    got: 2,
                    ..
                }
            ),
            "{err}"
        );
        for seq in 3..20 {
            s.append(&[ev("a", seq, day * 2)]).unwrap();
        }
        // Reopen: the summary comes from the log alone.
        let s = FileStore::open(&dir).unwrap();
        let streams = s.streams().unwrap();
        assert_eq!(
            streams
                .iter()
                .map(|i| (i.key.as_str(), i.last_seq))
                .collect::<Vec<_>>(),
            [("a", 19), ("b", 1)]
        );
        let mut seqs = Vec::new();
        s.read("a", SeqRange { from: 5, to: 9 }, &mut |e| {
            seqs.push(e.seq);
            Ok(())
        })
        .unwrap();
        assert_eq!(seqs, [5, 6, 7, 8, 9]);
        let days: Vec<_> = sorted_entries(&dir.join("events")).unwrap();
        assert_eq!(days.len(), 3);
        assert!(
            sorted_entries(&days[2]).unwrap().len() > 1,
            "rotated by size"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_write_is_quarantined_not_lost_or_fatal() {
        let dir = tmp("torn");
        let mut s = FileStore::create(&dir, FileStoreOptions::default()).unwrap();
        s.append(&[ev("a", 1, 0), ev("a", 2, 0)]).unwrap();
        let part = s.parts().unwrap().pop().unwrap();
        let mut f = OpenOptions::new().append(true).open(&part).unwrap();
        f.write_all(b"{\"event_id\":\"01H").unwrap();
        drop(f);
        let mut s = FileStore::create(&dir, FileStoreOptions::default()).unwrap();
        let q: Vec<_> = sorted_entries(&dir.join("quarantine")).unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(fs::read(&q[0]).unwrap(), b"{\"event_id\":\"01H");
        s.append(&[ev("a", 3, 0)]).unwrap();
        assert_eq!(s.streams().unwrap()[0].last_seq, 3);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_line_is_reported_with_file_and_line() {
        let dir = tmp("corrupt");
        let mut s = FileStore::create(&dir, FileStoreOptions::default()).unwrap();
        s.append(&[ev("a", 1, 0)]).unwrap();
        let part = s.parts().unwrap().pop().unwrap();
        let mut f = OpenOptions::new().append(true).open(&part).unwrap();
        f.write_all(b"{\"nope\":1}\n").unwrap();
        drop(f);
        let err = FileStore::open(&dir).unwrap().streams().unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}:2: not an event envelope", part.display())),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn snapshots_are_listed_by_seq_then_projector() {
        let dir = tmp("snaps");
        let mut s = FileStore::create(&dir, FileStoreOptions::default()).unwrap();
        for (seq, p) in [(10, "book"), (2, "positions"), (10, "abc")] {
            s.put_snapshot(&StoredSnapshot {
                stream: "md:x:Y".into(),
                seq,
                projector: p.into(),
                state: serde_json::json!({"seq": seq}),
                guest_snapshot: None,
            })
            .unwrap();
        }
        let got: Vec<_> = s
            .snapshots("md:x:Y")
            .unwrap()
            .into_iter()
            .map(|s| (s.seq, s.projector))
            .collect();
        assert_eq!(
            got,
            [
                (2, "positions".to_string()),
                (10, "abc".into()),
                (10, "book".into())
            ]
        );
        assert!(s.snapshots("other").unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
