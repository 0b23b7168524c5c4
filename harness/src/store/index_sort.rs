//! Building one day's index file in bounded memory: rows come in log order, the file wants them
//! by (stream, seq). Rows are buffered up to [`CHUNK`]; a full buffer is stable-sorted by stream
//! and spilled to a run file; at the end the runs and the last buffer are merged into the
//! Parquet writer, one row group of [`super::index::ROW_GROUP`] rows at a time.
//!
//! Invariants: memory is bounded by `CHUNK` rows, one row per run while merging, and one row
//! group, whatever the day holds. Order is (stream, then log order): each run is sorted stably,
//! and the merge takes equal streams from earlier runs first, so a stream's rows keep their log
//! (= seq) order. Run files live in a temporary folder next to the output, removed on success
//! and on error.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::Schema;
use parquet::arrow::ArrowWriter;

use crate::error::{Error, Result};

/// Rows held before a run is spilled (a few hundred bytes each: ~100 MB at most).
pub(super) const CHUNK: usize = 262_144;

/// One index row.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Row {
    pub key: String,
    pub seq: u64,
    pub time: i64,
    pub ty: String,
    pub inst: Option<String>,
    pub record: Vec<u8>,
}

/// Sorts rows by stream with bounded memory; see the module doc.
pub(super) struct Sorter {
    buf: Vec<Row>,
    chunk: usize,
    dir: PathBuf,
    runs: Vec<PathBuf>,
}

impl Sorter {
    /// A sorter spilling into `dir` (created when the first run spills).
    pub(super) fn new(dir: PathBuf, chunk: usize) -> Self {
        Sorter {
            buf: Vec::new(),
            chunk: chunk.max(1),
            dir,
            runs: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, row: Row) -> Result<()> {
        self.buf.push(row);
        if self.buf.len() >= self.chunk {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        self.buf.sort_by(|a, b| a.key.cmp(&b.key));
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let path = self.dir.join(format!("run-{:06}", self.runs.len()));
        let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        for row in self.buf.drain(..) {
            write_row(&mut w, &row).map_err(|e| Error::io(&path, e))?;
        }
        w.flush().map_err(|e| Error::io(&path, e))?;
        self.runs.push(path);
        Ok(())
    }

    /// Every row in (stream, log) order into `sink`; returns how many. Removes the run files.
    pub(super) fn finish(mut self, sink: &mut dyn FnMut(Row) -> Result<()>) -> Result<u64> {
        let result = self.merge(sink);
        if !self.runs.is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        result
    }

    fn merge(&mut self, sink: &mut dyn FnMut(Row) -> Result<()>) -> Result<u64> {
        self.buf.sort_by(|a, b| a.key.cmp(&b.key));
        let mut last = std::mem::take(&mut self.buf).into_iter();
        let mut readers = Vec::with_capacity(self.runs.len());
        for path in &self.runs {
            let f = File::open(path).map_err(|e| Error::io(path, e))?;
            readers.push((BufReader::with_capacity(1 << 16, f), path));
        }
        // Source i < runs.len() is run i; the last source is the in-memory buffer.
        let mut next = |i: usize| -> Result<Option<Row>> {
            match readers.get_mut(i) {
                Some((r, path)) => read_row(r).map_err(|e| Error::io(*path, e)),
                None => Ok(last.next()),
            }
        };
        let sources = self.runs.len() + 1;
        let mut heads: Vec<Option<Row>> = Vec::with_capacity(sources);
        let mut heap = BinaryHeap::new();
        for i in 0..sources {
            let row = next(i)?;
            if let Some(r) = &row {
                heap.push(Reverse((r.key.clone(), i)));
            }
            heads.push(row);
        }
        let mut n = 0;
        while let Some(Reverse((_, i))) = heap.pop() {
            let row = heads[i].take().expect("a source in the heap has a head");
            heads[i] = next(i)?;
            if let Some(r) = &heads[i] {
                heap.push(Reverse((r.key.clone(), i)));
            }
            sink(row)?;
            n += 1;
        }
        Ok(n)
    }
}

fn write_row(w: &mut impl Write, r: &Row) -> std::io::Result<()> {
    let bytes = |w: &mut dyn Write, b: &[u8]| -> std::io::Result<()> {
        w.write_all(&(b.len() as u32).to_le_bytes())?;
        w.write_all(b)
    };
    bytes(w, r.key.as_bytes())?;
    w.write_all(&r.seq.to_le_bytes())?;
    w.write_all(&r.time.to_le_bytes())?;
    bytes(w, r.ty.as_bytes())?;
    match &r.inst {
        Some(i) => {
            w.write_all(&[1])?;
            bytes(w, i.as_bytes())?;
        }
        None => w.write_all(&[0])?,
    }
    bytes(w, &r.record)
}

/// The next row of a run file; `None` at its end.
fn read_row(r: &mut impl Read) -> std::io::Result<Option<Row>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    let key = text(read_n(r, u32::from_le_bytes(len))?)?;
    let seq = u64::from_le_bytes(read_array(r)?);
    let time = i64::from_le_bytes(read_array(r)?);
    let ty = text(read_bytes(r)?)?;
    let inst = match read_array::<1>(r)? {
        [0] => None,
        _ => Some(text(read_bytes(r)?)?),
    };
    let record = read_bytes(r)?;
    Ok(Some(Row {
        key,
        seq,
        time,
        ty,
        inst,
        record,
    }))
}

fn read_array<const N: usize>(r: &mut impl Read) -> std::io::Result<[u8; N]> {
    let mut a = [0u8; N];
    r.read_exact(&mut a)?;
    Ok(a)
}

fn read_n(r: &mut impl Read, n: u32) -> std::io::Result<Vec<u8>> {
    let mut v = vec![0; n as usize];
    r.read_exact(&mut v)?;
    Ok(v)
}

/// A length-prefixed byte string.
fn read_bytes(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let n = u32::from_le_bytes(read_array(r)?);
    read_n(r, n)
}

fn text(v: Vec<u8>) -> std::io::Result<String> {
    String::from_utf8(v).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Writes rows to a Parquet file one row group at a time.
pub(super) struct GroupWriter {
    writer: ArrowWriter<File>,
    schema: Arc<Schema>,
    group: usize,
    rows: Vec<Row>,
    path: PathBuf,
}

impl GroupWriter {
    pub(super) fn new(
        writer: ArrowWriter<File>,
        schema: Arc<Schema>,
        group: usize,
        path: &Path,
    ) -> Self {
        GroupWriter {
            writer,
            schema,
            group,
            rows: Vec::with_capacity(group.min(CHUNK)),
            path: path.to_path_buf(),
        }
    }

    pub(super) fn push(&mut self, row: Row) -> Result<()> {
        self.rows.push(row);
        if self.rows.len() >= self.group {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.key))),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.seq))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.time))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.ty))),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.inst.as_deref()),
            )),
            Arc::new(BinaryArray::from_iter_values(
                rows.iter().map(|r| &r.record),
            )),
        ];
        let engine = |e: &dyn std::fmt::Display| Error::Corrupt {
            path: self.path.clone(),
            line: 0,
            message: format!("writing the index: {e}"),
        };
        let batch = RecordBatch::try_new(self.schema.clone(), cols).map_err(|e| engine(&e))?;
        self.writer.write(&batch).map_err(|e| engine(&e))?;
        // One row group per flush: the writer holds no more than this in memory.
        self.writer.flush().map_err(|e| engine(&e))
    }

    /// Writes the last row group and the footer, with `meta` in its key-value metadata.
    pub(super) fn close(mut self, meta: parquet::file::metadata::KeyValue) -> Result<()> {
        self.flush()?;
        self.writer.append_key_value_metadata(meta);
        let path = self.path.clone();
        self.writer.close().map(|_| ()).map_err(|e| Error::Corrupt {
            path,
            line: 0,
            message: format!("writing the index: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, seq: u64) -> Row {
        Row {
            key: key.into(),
            seq,
            time: seq as i64 * 10,
            ty: "quote".into(),
            inst: seq.is_multiple_of(2).then(|| format!("I{seq}")),
            record: vec![seq as u8; (seq % 5) as usize],
        }
    }

    #[test]
    fn spilled_runs_merge_into_stream_then_log_order() {
        let dir = std::env::temp_dir().join(format!("tapedeck-sort-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Three streams interleaved in log order, chunk 4: several spilled runs.
        let keys = ["b", "a", "c", "a", "b", "a", "c", "c", "a", "b", "a"];
        let mut next_seq = std::collections::BTreeMap::new();
        let mut input = Vec::new();
        for k in keys {
            let s = next_seq.entry(k).or_insert(0u64);
            *s += 1;
            input.push(row(k, *s));
        }
        for chunk in [1, 3, 4, 100] {
            let mut sorter = Sorter::new(dir.clone(), chunk);
            for r in input.clone() {
                sorter.push(r).unwrap();
            }
            let mut out = Vec::new();
            let n = sorter
                .finish(&mut |r| {
                    out.push(r);
                    Ok(())
                })
                .unwrap();
            assert_eq!(n as usize, input.len());
            let mut want = input.clone();
            want.sort_by(|a, b| a.key.cmp(&b.key));
            assert_eq!(out, want, "chunk {chunk}");
            assert!(!dir.exists(), "run files removed");
        }
    }
}
