//! The embedded file store: a directory, no server.
//!
//! ```text
//! DIR/tapedeck-store.json                          format marker
//! DIR/events/day=YYYY-MM-DD/part-NNNNNN.jsonl      the log: one envelope per line, append-only
//! DIR/snapshots/<stream>/<seq>.<projector>.json    stored projector states (replay anchors)
//! DIR/quarantine/                                  bytes set aside instead of dropped
//! ```
//! Stream keys and projector names in paths are [`crate::names::file_name`]s.
//! The log is the source of truth (seed 002). Parts are day-partitioned by `ingested_at` (the
//! order appends happen in), rotated by size, and every append is one write followed by
//! `fsync`. A write torn by a crash is moved to `quarantine/` when the store is next opened
//! for appending.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::dirs::sorted_entries;
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
}

impl Default for FileStoreOptions {
    fn default() -> Self {
        FileStoreOptions {
            max_part_bytes: 128 << 20,
        }
    }
}

#[derive(Debug)]
pub struct FileStore {
    root: PathBuf,
    opts: FileStoreOptions,
    /// Stream summaries, from one scan of the log (on first use).
    streams: OnceLock<BTreeMap<String, StreamInfo>>,
    /// The index manifest, if the index matches the log (checked on first use).
    index: OnceLock<Option<super::index::Manifest>>,
}

fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|e| Error::io(path, e))
}

impl FileStore {
    /// Opens an existing store.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
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
            opts: FileStoreOptions::default(),
            streams: OnceLock::new(),
            index: OnceLock::new(),
        })
    }

    /// Opens a store for appending, creating it if needed, and sets aside any torn write.
    pub fn create(root: impl Into<PathBuf>, opts: FileStoreOptions) -> Result<Self> {
        let root = root.into();
        io(&root, fs::create_dir_all(root.join("events")))?;
        let marker = root.join(MARKER);
        if !marker.is_file() {
            io(
                &marker,
                fs::write(
                    &marker,
                    "{\"format\":\"tapedeck-file-store\",\"version\":1}\n",
                ),
            )?;
        }
        let store = FileStore {
            root,
            opts,
            streams: OnceLock::new(),
            index: OnceLock::new(),
        };
        for part in store.parts()? {
            store.quarantine_torn_tail(&part)?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every part file, oldest first.
    fn parts(&self) -> Result<Vec<PathBuf>> {
        let events = self.root.join("events");
        let mut parts = Vec::new();
        for day in sorted_entries(&events)? {
            if day
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("day="))
            {
                parts.extend(
                    sorted_entries(&day)?
                        .into_iter()
                        .filter(|p| p.extension().is_some_and(|e| e == "jsonl")),
                );
            }
        }
        Ok(parts)
    }

    /// Moves an unterminated last line (a write torn by a crash) to `quarantine/`.
    fn quarantine_torn_tail(&self, part: &Path) -> Result<()> {
        let bytes = io(part, fs::read(part))?;
        if bytes.is_empty() || bytes.ends_with(b"\n") {
            return Ok(());
        }
        let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let q = self.root.join("quarantine");
        io(&q, fs::create_dir_all(&q))?;
        let name = format!(
            "torn-{}-at-{keep}.bin",
            part.file_name().unwrap().to_string_lossy()
        );
        io(&q, fs::write(q.join(&name), &bytes[keep..]))?;
        let f = io(part, OpenOptions::new().write(true).open(part))?;
        io(part, f.set_len(keep as u64))?;
        io(part, f.sync_all())?;
        eprintln!(
            "warning: {}: torn write of {} bytes at the end moved to quarantine/{name}",
            part.display(),
            bytes.len() - keep
        );
        Ok(())
    }

    /// Calls `f` on every event of the log in log order, with its file and line.
    fn scan(
        &self,
        filter: Option<&str>,
        f: &mut dyn FnMut(Envelope, &Path, u64) -> Result<()>,
    ) -> Result<()> {
        let needle =
            filter.map(|s| format!("\"stream_key\":{}", serde_json::to_string(s).unwrap()));
        for part in self.parts()? {
            let reader = BufReader::with_capacity(1 << 20, io(&part, File::open(&part))?);
            for (i, line) in reader.lines().enumerate() {
                let line = io(&part, line)?;
                if needle.as_ref().is_some_and(|n| !line.contains(n.as_str())) {
                    continue;
                }
                let lineno = i as u64 + 1;
                let e: Envelope = serde_json::from_str(&line).map_err(|e| Error::Corrupt {
                    path: part.clone(),
                    line: lineno,
                    message: format!("not an event envelope: {e}"),
                })?;
                f(e, &part, lineno)?;
            }
        }
        Ok(())
    }

    fn stream_map(&self) -> Result<&BTreeMap<String, StreamInfo>> {
        if let Some(s) = self.streams.get() {
            return Ok(s);
        }
        // An up-to-date index answers without parsing the log.
        if let Some(m) = self.fresh_index()? {
            let map = super::index::stream_infos(&self.root, m)?;
            return Ok(self.streams.get_or_init(|| map));
        }
        let mut map: BTreeMap<String, StreamInfo> = BTreeMap::new();
        self.scan(None, &mut |e, path, line| {
            match map.get_mut(&e.stream_key) {
                Some(info) if e.seq == info.last_seq + 1 => info.add(&e),
                Some(info) => {
                    return Err(Error::Corrupt {
                        path: path.to_path_buf(),
                        line,
                        message: format!(
                            "stream {} seq {} follows seq {}",
                            e.stream_key, e.seq, info.last_seq
                        ),
                    });
                }
                None if e.seq == 1 => {
                    let mut info = StreamInfo::new(&e);
                    info.add(&e);
                    map.insert(e.stream_key.clone(), info);
                }
                None => {
                    return Err(Error::Corrupt {
                        path: path.to_path_buf(),
                        line,
                        message: format!("stream {} starts at seq {}, not 1", e.stream_key, e.seq),
                    });
                }
            }
            Ok(())
        })?;
        Ok(self.streams.get_or_init(|| map))
    }

    fn snapshot_dir(&self, stream: &str) -> PathBuf {
        self.root.join("snapshots").join(file_name(stream))
    }

    /// The part to append to for `day`: the newest, unless it is full.
    fn part_for(&self, day: &str) -> Result<PathBuf> {
        let dir = self.root.join("events").join(format!("day={day}"));
        io(&dir, fs::create_dir_all(&dir))?;
        let existing = sorted_entries(&dir)?;
        let next_index = existing.len();
        if let Some(last) = existing.last() {
            let size = io(last, fs::metadata(last))?.len();
            if size < self.opts.max_part_bytes {
                return Ok(last.clone());
            }
        }
        Ok(dir.join(format!("part-{next_index:06}.jsonl")))
    }
}

impl EventSource for FileStore {
    fn streams(&self) -> Result<Vec<StreamInfo>> {
        Ok(self.stream_map()?.values().cloned().collect())
    }

    fn read(
        &self,
        stream: &str,
        range: SeqRange,
        f: &mut dyn FnMut(Envelope) -> Result<()>,
    ) -> Result<()> {
        let mut last = 0;
        self.scan(Some(stream), &mut |e, path, line| {
            if e.stream_key != stream {
                return Ok(());
            }
            if e.seq != last + 1 {
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    line,
                    message: format!("stream {stream} seq {} follows seq {last}", e.seq),
                });
            }
            last = e.seq;
            if range.contains(e.seq) { f(e) } else { Ok(()) }
        })
    }

    fn snapshots(&self, stream: &str) -> Result<Vec<StoredSnapshot>> {
        let dir = self.snapshot_dir(stream);
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for path in sorted_entries(&dir)? {
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
}

impl FileStore {
    /// The index manifest when the index is up to date with the log.
    pub fn fresh_index(&self) -> Result<Option<&super::index::Manifest>> {
        if self.index.get().is_none() {
            let m = super::index::fresh_manifest(&self.root)?;
            let _ = self.index.set(m);
        }
        Ok(self.index.get().and_then(Option::as_ref))
    }
}

impl EventSink for FileStore {
    fn append(&mut self, events: &[Envelope]) -> Result<AppendReport> {
        let last: BTreeMap<String, u64> = self
            .stream_map()?
            .iter()
            .map(|(k, v)| (k.clone(), v.last_seq))
            .collect();
        check_seqs(&last, events)?;
        // One buffer per day, each written with one call and synced.
        let mut by_day: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for e in events {
            let buf = by_day.entry(day_of(e.ingested_at)).or_default();
            serde_json::to_writer(&mut *buf, e).map_err(|err| Error::BadEvent {
                stream: e.stream_key.clone(),
                seq: e.seq,
                message: err.to_string(),
            })?;
            buf.push(b'\n');
        }
        for (day, buf) in by_day {
            let part = self.part_for(&day)?;
            let mut f = io(
                &part,
                OpenOptions::new().create(true).append(true).open(&part),
            )?;
            io(&part, f.write_all(&buf))?;
            io(&part, f.sync_data())?;
        }
        let mut map = self.streams.take().unwrap_or_default();
        for e in events {
            match map.get_mut(&e.stream_key) {
                Some(info) => info.add(e),
                None => {
                    let mut info = StreamInfo::new(e);
                    info.add(e);
                    map.insert(e.stream_key.clone(), info);
                }
            }
        }
        let _ = self.streams.set(map);
        // The log moved on: whether the index still matches is decided afresh.
        self.index.take();
        Ok(AppendReport::all_stored(events))
    }

    fn put_snapshot(&mut self, s: &StoredSnapshot) -> Result<()> {
        let dir = self.snapshot_dir(&s.stream);
        let path = dir.join(format!("{:020}.{}.json", s.seq, file_name(&s.projector)));
        let mut bytes = serde_json::to_vec_pretty(s).expect("snapshot serializes");
        bytes.push(b'\n');
        crate::runtime::write_atomic(&path, &bytes)
    }

    fn quarantine(&mut self, source: &str, record: &serde_json::Value) -> Result<String> {
        use std::io::Write;
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
