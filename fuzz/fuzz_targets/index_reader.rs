//! Index files (`index/day=*.parquet`) as the file store reads them: stream summaries
//! (`index_view::day_streams_from_rows`), then each stream's packed records (`read_records`) pushed into a guest
//! batch as replay pushes them. The first byte picks what the rest is:
//! - 0 or 3: the file's bytes, as found on disk (a bit-flipped or foreign file);
//! - 1: rows of the index schema built from the bytes (keys, seqs, times, types, records), so
//!   the readers' logic is reached past the Parquet decoder;
//! - 2: a Parquet file whose columns have the index's names but other types.
//!
//! Oracle: no panic escapes (the reader may catch a panic of the Parquet decoder and return
//! an error); a record that `push_record` accepts decodes in the batch it joined (a
//! guest is handed only batches that decode: its driver traps on any other).
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use arbitrary::{Result, Unstructured};
use arrow_array::{
    ArrayRef, BinaryArray, Int32Array, Int64Array, LargeStringArray, RecordBatch, StringArray,
    UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use libfuzzer_sys::fuzz_target;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use tapedeck::store::SeqRange;
use tapedeck::store::index::{self, DayEntry, Manifest};
use tapedeck::store::index_view;
use tapedeck_guest::codec::{EventBatch, EventBatchWriter};

const NAMES: [&str; 6] = [
    "stream_key",
    "seq",
    "occurred_at",
    "event_type",
    "instrument",
    "record",
];
const KEYS: [&str; 3] = ["md:binance-spot:BTCUSDT", "exec:sim:SYM1", "a"];

struct Fixture {
    root: PathBuf,
    file: PathBuf,
    manifest: Manifest,
    /// Valid records (the seed envelopes, packed), for rows to start from.
    records: Vec<Vec<u8>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = tapedeck_fuzz::scratch_dir("index_reader");
        std::fs::create_dir_all(root.join("index")).unwrap();
        let mut manifest = Manifest {
            version: 1,
            ..Manifest::default()
        };
        manifest.days.insert("fuzz".into(), DayEntry::default());
        Fixture {
            file: root.join("index/day=fuzz.parquet"),
            root,
            manifest,
            records: tapedeck_fuzz::seeds::records(&tapedeck_fuzz::seeds::envelopes()),
        }
    })
}

fn write_parquet(path: &PathBuf, cols: Vec<(Field, ArrayRef)>, group: usize) -> bool {
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = cols.into_iter().unzip();
    let schema = Arc::new(Schema::new(fields));
    let Ok(batch) = RecordBatch::try_new(schema.clone(), arrays) else {
        return false;
    };
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, schema, Some(props)).unwrap();
    w.write(&batch).is_ok() && w.close().is_ok()
}

fn text(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=3)? {
        0..=1 => KEYS[u.choose_index(KEYS.len())?].to_string(),
        _ => u.arbitrary()?,
    })
}

/// Rows of the index schema: sorted by key as `rebuild` writes them, seqs mostly gapless.
fn index_rows(u: &mut Unstructured<'_>, f: &Fixture) -> Result<(Vec<(Field, ArrayRef)>, usize)> {
    let n = u.int_in_range(0..=48)?;
    let group = u.int_in_range(1..=16)?;
    let mut rows = Vec::with_capacity(n);
    let mut seq = 0u64;
    for _ in 0..n {
        let key = text(u)?;
        seq = if u.ratio(1, 8)? {
            u.arbitrary()?
        } else {
            seq.wrapping_add(1)
        };
        let time: i64 = u.arbitrary()?;
        let ty = text(u)?;
        let inst: Option<String> = u.arbitrary()?;
        let record: Vec<u8> = match u.int_in_range(0..=3)? {
            0 => u.arbitrary()?,
            _ => {
                let mut r = f.records[u.choose_index(f.records.len())?].clone();
                if u.ratio(1, 2)? && !r.is_empty() {
                    let i = u.choose_index(r.len())?;
                    r[i] = u.arbitrary()?;
                }
                r
            }
        };
        rows.push((key, seq, time, ty, inst, record));
    }
    if u.ratio(3, 4)? {
        rows.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let field = |i: usize, t: DataType, null: bool| Field::new(NAMES[i], t, null);
    let cols: Vec<(Field, ArrayRef)> = vec![
        (
            field(0, DataType::Utf8, false),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.as_str()),
            )),
        ),
        (
            field(1, DataType::UInt64, false),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.1))),
        ),
        (
            field(2, DataType::Int64, false),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ),
        (
            field(3, DataType::Utf8, false),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.3.as_str()),
            )),
        ),
        (
            field(4, DataType::Utf8, true),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.4.clone()).collect::<Vec<_>>(),
            )),
        ),
        (
            field(5, DataType::Binary, false),
            Arc::new(BinaryArray::from_iter_values(
                rows.iter().map(|r| r.5.as_slice()),
            )),
        ),
    ];
    Ok((cols, group))
}

/// The index's column names over other types (or fewer or more columns), nulls allowed.
fn foreign_rows(u: &mut Unstructured<'_>) -> Result<(Vec<(Field, ArrayRef)>, usize)> {
    let n = u.int_in_range(0..=16)?;
    let ncols = u.int_in_range(0..=8)?;
    let mut cols = Vec::new();
    for c in 0..ncols {
        let name = NAMES.get(c).copied().unwrap_or("extra");
        let (t, a): (DataType, ArrayRef) = match u.int_in_range(0..=5)? {
            0 => (
                DataType::Utf8,
                Arc::new(StringArray::from(
                    (0..n)
                        .map(|_| u.arbitrary::<Option<String>>())
                        .collect::<Result<Vec<_>>>()?,
                )),
            ),
            1 => (
                DataType::LargeUtf8,
                Arc::new(LargeStringArray::from(
                    (0..n)
                        .map(|_| u.arbitrary::<Option<String>>())
                        .collect::<Result<Vec<_>>>()?,
                )),
            ),
            2 => (
                DataType::UInt64,
                Arc::new(UInt64Array::from(
                    (0..n)
                        .map(|_| u.arbitrary::<Option<u64>>())
                        .collect::<Result<Vec<_>>>()?,
                )),
            ),
            3 => (
                DataType::Int64,
                Arc::new(Int64Array::from(
                    (0..n)
                        .map(|_| u.arbitrary::<Option<i64>>())
                        .collect::<Result<Vec<_>>>()?,
                )),
            ),
            4 => (
                DataType::Int32,
                Arc::new(Int32Array::from(
                    (0..n)
                        .map(|_| u.arbitrary::<Option<i32>>())
                        .collect::<Result<Vec<_>>>()?,
                )),
            ),
            _ => (
                DataType::Binary,
                Arc::new(BinaryArray::from(
                    (0..n)
                        .map(|_| u.arbitrary::<Option<Vec<u8>>>())
                        .collect::<Result<Vec<_>>>()?
                        .iter()
                        .map(|o| o.as_deref())
                        .collect::<Vec<_>>(),
                )),
            ),
        };
        cols.push((Field::new(name, t, true), a));
    }
    Ok((cols, u.int_in_range(1..=8)?))
}

fn read_back(f: &Fixture) {
    let mut keys: Vec<String> = KEYS.iter().map(|k| k.to_string()).collect();
    if let Ok(streams) = index_view::day_streams_from_rows(&f.root, &f.manifest, "fuzz") {
        keys.extend(streams.into_keys());
    }
    let mut buf = Vec::new();
    for key in keys {
        let _ = index::read_records(
            &f.root,
            &f.manifest,
            &key,
            SeqRange::ALL,
            &mut |_, _, rec| {
                let mut w = EventBatchWriter::new(std::mem::take(&mut buf));
                if w.push_record(rec, 1).is_ok() {
                    EventBatch::new(w.as_bytes())
                        .expect("a batch header")
                        .for_each_event(|_| {})
                        .unwrap_or_else(|e| {
                            panic!("push_record accepted a record that does not decode: {e}")
                        });
                }
                buf = w.finish();
                Ok(())
            },
        );
    }
}

fuzz_target!(
    init: {
        // The index reader turns a panic of the Parquet decoder into an error (catch_unwind),
        // but the hook libfuzzer-sys installs aborts on every panic, caught or not. This hook
        // only prints; a panic that escapes the target still aborts (libfuzzer-sys catches it
        // at the top and aborts), so it is still a crash.
        std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
        tapedeck_fuzz::write_seeds_if_asked("index_reader")
    },
    |data: &[u8]| {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        let f = fixture();
        let mut u = Unstructured::new(rest);
        let written = match mode % 4 {
            1 => index_rows(&mut u, f).is_ok_and(|(cols, g)| write_parquet(&f.file, cols, g)),
            2 => foreign_rows(&mut u).is_ok_and(|(cols, g)| write_parquet(&f.file, cols, g)),
            _ => std::fs::write(&f.file, rest).is_ok(),
        };
        if written {
            read_back(f);
        }
    }
);
