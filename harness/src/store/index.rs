//! The file store's columnar index: derived from the log, rebuildable at any time, never the
//! source of truth (seed 002).
//!
//! `index/day=YYYY-MM-DD.parquet` holds a day's events sorted by (stream, seq) with the columns
//! `stream_key`, `seq`, `occurred_at`, `event_type`, `instrument` and `record` (the event already
//! packed in the guest codec, stream id 0); full envelopes stay in the log. Row groups carry
//! min/max statistics, so a stream's rows are found without reading the others.
//! `index/manifest.json` records, per day, the log parts it was built from (name, size and
//! sha256 of the bytes indexed) and the sha256 of the day's index file.
//!
//! Invariants: the index is used only when [`super::index_state::state`] finds it `Fresh`: every log part's
//! content checksum matches (a same-size edit makes it stale, not served stale) and every
//! index file is there with its checksum (a deleted or bit-flipped file makes it `Unusable`,
//! and readers go to the log). A rebuild indexes complete lines only (an unterminated last
//! line is a write in flight) and runs under the store's writer lock; a manifest it cannot
//! read is rebuilt, never an error. Checking freshness hashes a log part or index file (sha256,
//! hardware-assisted where the CPU has it) only when its verification stamp no longer holds
//! (`verified.rs`: device, inode, size, mtime and ctime as they were when its checksum last
//! matched); `fsck` hashes every byte.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, BinaryArray, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::data_type::AsBytes;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::Statistics;
use serde::{Deserialize, Serialize};
use tapedeck_guest::codec::EventBatchWriter;

use super::SeqRange;
use super::index_sort::{CHUNK, GroupWriter, Row, Sorter};
use crate::error::{Error, Result};
use crate::event::Envelope;
use crate::event::StreamEncoder;

pub(super) const ROW_GROUP: usize = 65_536;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub version: u32,
    /// Per day: (log part file name, its size when indexed), and the rows indexed.
    pub days: BTreeMap<String, DayEntry>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DayEntry {
    pub parts: Vec<(String, u64)>,
    pub rows: u64,
    /// sha256 (hex) of each part's bytes as indexed, in the order of `parts`.
    #[serde(default)]
    pub checksums: Vec<String>,
    /// sha256 (hex) of the day's index file.
    #[serde(default)]
    pub file_sha256: String,
}

/// The key of a day file's Parquet key-value metadata that holds its streams (JSON of
/// `BTreeMap<String, DayStream>`): readers learn the streams from the footer, covered by the
/// file's checksum, without reading the rows (`fsck` checks the rows against it).
const STREAMS_KEY: &str = "tapedeck.streams";

/// One stream's events in one day file of the index.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DayStream {
    pub first_seq: u64,
    pub last_seq: u64,
    pub first_time: i64,
    pub last_time: i64,
    /// Events by `event_type`.
    pub counts: BTreeMap<String, u64>,
}

impl DayStream {
    /// Adds the day file's next event of the stream (rows come in seq order): an error names
    /// a seq that does not follow the stream's last (an index must not hide a gap).
    pub(super) fn add(
        streams: &mut BTreeMap<String, DayStream>,
        key: &str,
        seq: u64,
        time: i64,
        ty: &str,
        path: &Path,
    ) -> Result<()> {
        let s = match streams.get_mut(key) {
            Some(s) => s,
            None => streams.entry(key.to_string()).or_insert(DayStream {
                first_seq: seq,
                last_seq: seq.wrapping_sub(1),
                first_time: time,
                last_time: time,
                counts: BTreeMap::new(),
            }),
        };
        if Some(seq) != s.last_seq.checked_add(1) {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                line: 0,
                message: format!(
                    "index: stream {key} seq {seq} follows seq {}; rebuild the index",
                    s.last_seq
                ),
            });
        }
        s.last_seq = seq;
        s.first_time = s.first_time.min(time);
        s.last_time = s.last_time.max(time);
        match s.counts.get_mut(ty) {
            Some(n) => *n += 1,
            None => {
                s.counts.insert(ty.to_string(), 1);
            }
        }
        Ok(())
    }
}

/// The manifest version this build writes; older manifests are stale. 3: each day file holds
/// its stream summaries ([`STREAMS_KEY`]).
pub(super) const VERSION: u32 = 3;

/// What a rebuild did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RebuildSummary {
    pub days: Vec<String>,
    pub rows: u64,
}

pub(super) fn engine<E: std::fmt::Debug>(what: &Path) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::engine(format!("index {}", what.display()), e)
}

/// One log part: file name, size, path.
pub(super) type LogPart = (String, u64, PathBuf);

/// The day directories of the log and their parts with sizes.
pub(super) fn log_days(root: &Path) -> Result<BTreeMap<String, Vec<LogPart>>> {
    let mut out = BTreeMap::new();
    for (day, dir) in super::log::days(root)? {
        let mut parts = Vec::new();
        for p in super::log::parts_of(&dir)? {
            let size = std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?.len();
            parts.push((
                p.file_name().unwrap().to_string_lossy().into_owned(),
                size,
                p,
            ));
        }
        out.insert(day, parts);
    }
    Ok(out)
}

pub(super) fn read_manifest(root: &Path) -> Result<Option<Manifest>> {
    let path = root.join("index/manifest.json");
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Corrupt {
            path,
            line: 1,
            message: format!("bad index manifest: {e}"),
        })
}

/// What is wrong with `day`'s index file of manifest `m`, if anything (missing, or not the
/// bytes the manifest names).
pub(super) fn day_file_problem(root: &Path, m: &Manifest, day: &str) -> Result<Option<String>> {
    let path = root.join(format!("index/day={day}.parquet"));
    if !path.is_file() {
        return Ok(Some(format!("{} is missing", path.display())));
    }
    if super::checksum::sha256_file(&path)? != m.days[day].file_sha256 {
        return Ok(Some(format!(
            "{} does not match its checksum in the manifest",
            path.display()
        )));
    }
    Ok(None)
}

/// Rebuilds the index for every log day on or after `since` (all days if `None`), and drops
/// index days the log no longer has. Days before `since` are kept only if their index file is
/// intact. Takes the store's writer lock (waiting the default lock timeout); see
/// [`super::FileStore::rebuild_index`] to choose it.
pub fn rebuild(root: &Path, since: Option<&str>) -> Result<RebuildSummary> {
    let timeout = super::FileStoreOptions::default().lock_timeout;
    let _lock = super::lock::WriterLock::acquire(root, timeout)?;
    rebuild_locked(root, since)
}

/// [`rebuild`], for a caller holding the writer lock.
pub(super) fn rebuild_locked(root: &Path, since: Option<&str>) -> Result<RebuildSummary> {
    let dir = root.join("index");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut manifest = match read_manifest(root) {
        Ok(Some(m)) if m.version == VERSION => m,
        Ok(_) => Manifest::default(),
        Err(e) => {
            eprintln!("warning: {e}; rebuilding the whole index");
            Manifest::default()
        }
    };
    manifest.version = VERSION;
    let log = log_days(root)?;
    manifest.days.retain(|d, _| log.contains_key(d));
    let mut summary = RebuildSummary::default();
    for (day, parts) in &log {
        if since.is_some_and(|s| day.as_str() < s)
            && manifest.days.contains_key(day)
            && day_file_problem(root, &manifest, day)?.is_none()
        {
            continue;
        }
        let out = dir.join(format!("day={day}.parquet"));
        let (rows, indexed) = rebuild_day(&out, parts)?;
        manifest.days.insert(
            day.clone(),
            DayEntry {
                parts: indexed.iter().map(|(n, s, _)| (n.clone(), *s)).collect(),
                rows,
                checksums: indexed.into_iter().map(|(_, _, c)| c).collect(),
                file_sha256: super::checksum::sha256_file(&out)?,
            },
        );
        summary.days.push(day.clone());
        summary.rows += rows;
    }
    let mut bytes = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    bytes.push(b'\n');
    crate::fs::write_atomic(&dir.join("manifest.json"), &bytes)?;
    Ok(summary)
}

/// A log part as indexed: name, bytes indexed (complete lines), their sha256.
type Indexed = (String, u64, String);

/// Indexes one day's log parts into `out`, in bounded memory (see `index_sort`).
fn rebuild_day(out: &Path, parts: &[LogPart]) -> Result<(u64, Vec<Indexed>)> {
    use sha2::Digest;
    let mut sorter = Sorter::new(out.with_extension("runs.tmp"), CHUNK);
    let mut enc = StreamEncoder::new(0);
    let mut scratch = Vec::new();
    let mut indexed = Vec::new();
    for (name, _, path) in parts {
        let mut h = sha2::Sha256::new();
        let mut size = 0u64;
        super::log::lines(path, &mut |line, lineno| {
            h.update(line);
            h.update(b"\n");
            size += line.len() as u64 + 1;
            let e: Envelope = serde_json::from_slice(line).map_err(|e| Error::Corrupt {
                path: path.clone(),
                line: lineno,
                message: format!(
                    "not an event envelope: {e}; `tapedeck fsck --store DIR --repair` sets it aside"
                ),
            })?;
            let mut w = EventBatchWriter::new(std::mem::take(&mut scratch));
            enc.encode(&e, &mut w)?;
            let record = w.records().next().expect("one record").to_vec();
            scratch = w.finish();
            sorter.push(Row {
                ty: e.body.event_type().to_string(),
                key: e.stream_key,
                seq: e.seq,
                time: e.occurred_at,
                inst: e.instrument,
                record,
            })
        })?;
        indexed.push((name.clone(), size, super::checksum::hex(&h.finalize())));
    }
    let tmp = out.with_extension("parquet.tmp");
    let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    // The packed records are stored plain: decompressing them was half of a backtest's
    // reading (snappy at ~1 GB/s); the other columns are small and compress well.
    let record = parquet::schema::types::ColumnPath::from("record");
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_column_compression(record.clone(), Compression::UNCOMPRESSED)
        .set_column_dictionary_enabled(record, false)
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build();
    let schema = Arc::new(index_schema());
    let w = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(engine(out))?;
    let mut groups = GroupWriter::new(w, schema, ROW_GROUP, out);
    let mut streams = BTreeMap::new();
    let n = sorter.finish(&mut |row| {
        DayStream::add(&mut streams, &row.key, row.seq, row.time, &row.ty, out)?;
        groups.push(row)
    })?;
    let streams = serde_json::to_string(&streams).expect("stream summaries serialize");
    groups.close(KeyValue::new(STREAMS_KEY.to_string(), streams))?;
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
    Ok((n, indexed))
}

/// The columns of an index file.
fn index_schema() -> Schema {
    Schema::new(vec![
        Field::new("stream_key", DataType::Utf8, false),
        Field::new("seq", DataType::UInt64, false),
        Field::new("occurred_at", DataType::Int64, false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("instrument", DataType::Utf8, true),
        Field::new("record", DataType::Binary, false),
    ])
}

/// Runs Parquet decoder calls on an index file. The decoder can panic on a damaged file
/// (arrow-rs does not promise an error for every bad input); here a panic becomes `Corrupt`, an
/// error the caller can act on (rebuild the index, read the log), not an abort. Only decoder
/// calls go in here: the caller's own code runs outside, so its panics stay panics.
pub(super) fn decoding<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
            (Some(s), _) => s.to_string(),
            (_, Some(s)) => s.clone(),
            _ => String::new(),
        };
        Err(Error::Corrupt {
            path: path.to_path_buf(),
            line: 0,
            message: format!(
                "index file unreadable (the Parquet decoder panicked: {what}); rebuild the index"
            ),
        })
    })
}

/// Opens an index file for reading, checking that its columns are the index's (names and
/// types), so the readers' column casts hold.
pub(super) fn open_index_file(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = decoding(path, || {
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(engine(path))
    })?;
    let want = index_schema();
    let found = builder.schema();
    let same = found.fields().len() == want.fields().len()
        && found
            .fields()
            .iter()
            .zip(want.fields())
            .all(|(f, w)| f.name() == w.name() && f.data_type() == w.data_type());
    if !same {
        let cols: Vec<String> = found
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect();
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            line: 0,
            message: format!(
                "not an index file: columns [{}]; rebuild the index",
                cols.join(", ")
            ),
        });
    }
    Ok(builder)
}

/// Reads `stream`'s packed records in `range` from the index days of `manifest`, in seq order.
/// (Public so the `index_reader` fuzz target can read index files without a fresh log.)
pub fn read_records(
    root: &Path,
    manifest: &Manifest,
    stream: &str,
    range: SeqRange,
    f: &mut super::RecordSink<'_>,
) -> Result<()> {
    for day in manifest.days.keys() {
        let path = root.join(format!("index/day={day}.parquet"));
        let builder = open_index_file(&path)?;
        let groups = groups_holding(builder.metadata(), stream);
        if groups.is_empty() {
            continue;
        }
        // Row groups of this stream alone (the usual case for a long stream) need no key
        // column read and no key compared per row.
        let alone = groups
            .iter()
            .all(|&g| only_key(builder.metadata(), g, stream));
        if alone {
            let mut reader = projected_reader(&path, builder, groups, [1, 2, 5])?;
            while let Some(batch) = decoding(&path, || Ok(reader.next()))? {
                let batch = batch.map_err(engine(&path))?;
                let seqs = col::<UInt64Array>(&batch, 0);
                let times = col::<Int64Array>(&batch, 1);
                let recs = col::<BinaryArray>(&batch, 2);
                for i in 0..batch.num_rows() {
                    let seq = seqs.value(i);
                    if range.contains(seq) {
                        f(seq, times.value(i), recs.value(i))?;
                    }
                }
            }
            continue;
        }
        let mut reader = projected_reader(&path, builder, groups, [0, 1, 2, 5])?;
        while let Some(batch) = decoding(&path, || Ok(reader.next()))? {
            let batch = batch.map_err(engine(&path))?;
            let keys = col::<StringArray>(&batch, 0);
            let seqs = col::<UInt64Array>(&batch, 1);
            let times = col::<Int64Array>(&batch, 2);
            let recs = col::<BinaryArray>(&batch, 3);
            for i in 0..batch.num_rows() {
                if keys.value(i) != stream || keys.is_null(i) {
                    continue;
                }
                let seq = seqs.value(i);
                if range.contains(seq) {
                    f(seq, times.value(i), recs.value(i))?;
                }
            }
        }
    }
    Ok(())
}

/// A reader of `groups` of an index file, only the columns `columns` (by schema position).
pub(super) fn projected_reader<const N: usize>(
    path: &Path,
    builder: ParquetRecordBatchReaderBuilder<File>,
    groups: Vec<usize>,
    columns: [usize; N],
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
    let mask = ProjectionMask::roots(builder.parquet_schema(), columns);
    decoding(path, || {
        builder
            .with_row_groups(groups)
            .with_projection(mask)
            .with_batch_size(8192)
            .build()
            .map_err(engine(path))
    })
}

/// The row groups of an index file whose stream_key range holds `stream`.
pub(super) fn groups_holding(
    meta: &parquet::file::metadata::ParquetMetaData,
    stream: &str,
) -> Vec<usize> {
    (0..meta.num_row_groups())
        .filter(|&g| match key_range(meta, g) {
            Some((lo, hi)) => lo <= stream.as_bytes() && stream.as_bytes() <= hi,
            None => true,
        })
        .collect()
}

/// Whether every row of row group `g` has stream key `stream`, by its exact (not truncated)
/// statistics.
fn only_key(meta: &parquet::file::metadata::ParquetMetaData, g: usize, stream: &str) -> bool {
    match meta.row_group(g).column(0).statistics() {
        Some(Statistics::ByteArray(s)) => {
            s.min_is_exact()
                && s.max_is_exact()
                && s.min_opt().map(AsBytes::as_bytes) == Some(stream.as_bytes())
                && s.max_opt().map(AsBytes::as_bytes) == Some(stream.as_bytes())
        }
        _ => false,
    }
}

/// The smallest and largest stream key in row group `g`, from its statistics (`None`: not
/// known, so it may hold any stream).
fn key_range(meta: &parquet::file::metadata::ParquetMetaData, g: usize) -> Option<(&[u8], &[u8])> {
    match meta.row_group(g).column(0).statistics() {
        Some(Statistics::ByteArray(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(lo), Some(hi)) => Some((lo.as_bytes(), hi.as_bytes())),
            _ => None,
        },
        _ => None,
    }
}

/// Column `i` of an index batch, as the array type the schema gives it (checked when the file
/// was opened).
pub(super) fn col<T: 'static>(batch: &RecordBatch, i: usize) -> &T {
    batch
        .column(i)
        .as_any()
        .downcast_ref::<T>()
        .expect("the index schema, checked by open_index_file")
}

/// The stream summaries a day's index file holds in its footer.
pub(super) fn day_streams(root: &Path, day: &str) -> Result<BTreeMap<String, DayStream>> {
    let path = root.join(format!("index/day={day}.parquet"));
    let builder = open_index_file(&path)?;
    let found = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|kv| kv.key == STREAMS_KEY))
        .and_then(|kv| kv.value.as_deref());
    let corrupt = |why: String| Error::Corrupt {
        path: path.clone(),
        line: 0,
        message: format!("index file without its stream summaries ({why}); rebuild the index"),
    };
    let json = found.ok_or_else(|| corrupt(format!("no {STREAMS_KEY}")))?;
    serde_json::from_str(json).map_err(|e| corrupt(e.to_string()))
}

/// Stream summaries and each stream's last day partition, from the day files' footers (their
/// stream summaries, joined across days).
pub(super) fn log_view(root: &Path, manifest: &Manifest) -> Result<super::log::LogView> {
    let mut view = super::log::LogView::default();
    for day in manifest.days.keys() {
        for (key, d) in day_streams(root, day)? {
            let info = view
                .infos
                .entry(key.clone())
                .or_insert_with(|| super::StreamInfo {
                    key: key.clone(),
                    first_seq: d.first_seq,
                    last_seq: d.first_seq.wrapping_sub(1),
                    first_time: d.first_time,
                    last_time: d.last_time,
                    counts: BTreeMap::new(),
                });
            if Some(d.first_seq) != info.last_seq.checked_add(1) {
                return Err(Error::Corrupt {
                    path: root.join(format!("index/day={day}.parquet")),
                    line: 0,
                    message: format!(
                        "index: stream {key} seq {} (day {day}) follows seq {}; rebuild the index",
                        d.first_seq, info.last_seq
                    ),
                });
            }
            info.last_seq = d.last_seq;
            info.first_time = info.first_time.min(d.first_time);
            info.last_time = info.last_time.max(d.last_time);
            for (ty, n) in d.counts {
                *info.counts.entry(ty).or_default() += n;
            }
            view.last_day.insert(key, day.clone());
        }
    }
    Ok(view)
}
