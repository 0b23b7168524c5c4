//! The Parquet artifacts written as they are produced: each (stream, role) writes its rows to
//! part files in a scratch directory while it runs ([`SideParts`], a row group every
//! [`CHUNK`] rows), and [`assemble`] joins the parts, in the order given, into
//! `decisions.parquet`, `trades.parquet` and `equity_curve.parquet`. Memory is a chunk of
//! rows per open part and a row group while assembling, whatever the number of rows.
//!
//! Invariants: the assembled files depend on the rows and their order only (not on how the
//! parts were cut, nor on the jobs): rows reach the final writer in batches of exactly
//! [`CHUNK`] (the last one shorter) and row groups hold [`ROW_GROUP`] rows. The files carry
//! no timestamps. The columns are those of [`super::parquet`]'s module doc.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::decision::{Decision, Output, side_name};
use crate::error::{Error, Result};
use crate::venue::{EquityPoint, Trade};

/// Rows a part buffers before writing them, and the batches the final files are written in.
pub const CHUNK: usize = 8192;
/// Rows per row group of the assembled files: the writer holds one row group in memory, so
/// this bounds the memory of assembling (64K rows of decisions were ~8 MB).
pub const ROW_GROUP: usize = CHUNK;

/// The three artifacts, in the order of [`SideParts`]' files.
pub const FILES: [&str; 3] = [
    "decisions.parquet",
    "trades.parquet",
    "equity_curve.parquet",
];

#[derive(Clone, Copy)]
enum Kind {
    Str,
    OptStr,
    U64,
    I64,
    F64,
}

fn schema(file: usize) -> SchemaRef {
    use Kind::*;
    let cols: &[(&str, Kind)] = match file {
        0 => &[
            ("stream", Str),
            ("role", Str),
            ("seq", U64),
            ("time_ns", I64),
            ("output", Str),
            ("side", OptStr),
            ("price", OptStr),
            ("qty", OptStr),
            ("json", Str),
        ],
        1 => &[
            ("stream", Str),
            ("role", Str),
            ("seq", U64),
            ("time_ns", I64),
            ("order_seq", U64),
            ("instrument", Str),
            ("side", Str),
            ("price", F64),
            ("qty", F64),
            ("fee", F64),
            ("liquidity", Str),
        ],
        _ => &[
            ("stream", Str),
            ("role", Str),
            ("seq", U64),
            ("time_ns", I64),
            ("equity", F64),
            ("drawdown", F64),
        ],
    };
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, k)| {
            let (t, null) = match k {
                Str => (DataType::Utf8, false),
                OptStr => (DataType::Utf8, true),
                U64 => (DataType::UInt64, false),
                I64 => (DataType::Int64, false),
                F64 => (DataType::Float64, false),
            };
            Field::new(*n, t, null)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

enum Col {
    Str(StringBuilder),
    U64(UInt64Builder),
    I64(Int64Builder),
    F64(Float64Builder),
}

impl Col {
    fn new(t: &DataType) -> Col {
        match t {
            DataType::Utf8 => Col::Str(StringBuilder::new()),
            DataType::UInt64 => Col::U64(UInt64Builder::new()),
            DataType::Int64 => Col::I64(Int64Builder::new()),
            _ => Col::F64(Float64Builder::new()),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Str(b) => Arc::new(b.finish()),
            Col::U64(b) => Arc::new(b.finish()),
            Col::I64(b) => Arc::new(b.finish()),
            Col::F64(b) => Arc::new(b.finish()),
        }
    }
}

/// One row's cells, in column order.
enum Cell<'a> {
    S(&'a str),
    O(Option<&'a str>),
    U(u64),
    I(i64),
    F(f64),
}

/// One artifact's part file: rows buffered in column builders, written as a row group every
/// [`CHUNK`] rows.
struct Part {
    path: PathBuf,
    schema: SchemaRef,
    cols: Vec<Col>,
    rows: usize,
    writer: ArrowWriter<File>,
}

fn engine(path: &Path, e: impl std::fmt::Display + std::fmt::Debug) -> Error {
    Error::engine(format!("writing {}", path.display()), e)
}

impl Part {
    fn create(path: PathBuf, schema: SchemaRef) -> Result<Part> {
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::UNCOMPRESSED)
            .set_max_row_group_row_count(Some(CHUNK))
            .set_max_row_group_bytes(None)
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
            .map_err(|e| engine(&path, e))?;
        Ok(Part {
            cols: schema
                .fields()
                .iter()
                .map(|f| Col::new(f.data_type()))
                .collect(),
            path,
            schema,
            rows: 0,
            writer,
        })
    }

    fn push(&mut self, cells: &[Cell<'_>]) -> Result<()> {
        for (c, v) in self.cols.iter_mut().zip(cells) {
            match (c, v) {
                (Col::Str(b), Cell::S(s)) => b.append_value(s),
                (Col::Str(b), Cell::O(s)) => b.append_option(*s),
                (Col::U64(b), Cell::U(x)) => b.append_value(*x),
                (Col::I64(b), Cell::I(x)) => b.append_value(*x),
                (Col::F64(b), Cell::F(x)) => b.append_value(*x),
                _ => unreachable!("cells follow the schema"),
            }
        }
        self.rows += 1;
        if self.rows == CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self.cols.iter_mut().map(Col::finish).collect();
        let batch =
            RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| engine(&self.path, e))?;
        self.rows = 0;
        self.writer.write(&batch).map_err(|e| engine(&self.path, e))
    }

    fn close(mut self) -> Result<PathBuf> {
        self.flush()?;
        self.writer.close().map_err(|e| engine(&self.path, e))?;
        Ok(self.path)
    }
}

/// The part files of one strategy on one stream, written while it runs. A write error is
/// kept and returned by [`SideParts::finish`] (the replay loop that feeds it cannot stop).
pub struct SideParts {
    stream: String,
    role: String,
    instruments: tapedeck_guest::Instruments,
    parts: Parts,
}

struct Parts {
    open: Option<[Part; 3]>,
    error: Option<Error>,
}

impl Parts {
    fn push(&mut self, file: usize, cells: &[Cell<'_>]) {
        if self.error.is_some() {
            return;
        }
        let parts = self.open.as_mut().expect("open until finished");
        if let Err(e) = parts[file].push(cells) {
            self.error = Some(e);
        }
    }
}

/// The finished part files of one side, in the order of [`FILES`].
#[derive(Debug, Clone)]
pub struct SideFiles(pub [PathBuf; 3]);

impl SideParts {
    /// Parts named `<name>.<file>` in `dir`; `instruments` names instruments in the
    /// decisions' JSON.
    pub fn create(
        dir: &Path,
        name: &str,
        stream: &str,
        role: &str,
        instruments: tapedeck_guest::Instruments,
    ) -> Result<SideParts> {
        let part = |i: usize| Part::create(dir.join(format!("{name}.{}", FILES[i])), schema(i));
        Ok(SideParts {
            stream: stream.to_string(),
            role: role.to_string(),
            instruments,
            parts: Parts {
                open: Some([part(0)?, part(1)?, part(2)?]),
                error: None,
            },
        })
    }

    pub fn decisions(&mut self, ds: &[Decision]) {
        let SideParts {
            stream,
            role,
            instruments,
            parts,
        } = self;
        for d in ds {
            let order = match &d.output {
                Output::NewOrder {
                    side, price, qty, ..
                } => Some((side_name(*side), price.to_string(), qty.to_string())),
                _ => None,
            };
            let json = d.output.to_json_named(instruments).to_string();
            parts.push(
                0,
                &[
                    Cell::S(stream),
                    Cell::S(role),
                    Cell::U(d.seq),
                    Cell::I(d.time_ns),
                    Cell::S(d.output.kind()),
                    Cell::O(order.as_ref().map(|o| o.0)),
                    Cell::O(order.as_ref().map(|o| o.1.as_str())),
                    Cell::O(order.as_ref().map(|o| o.2.as_str())),
                    Cell::S(&json),
                ],
            );
        }
    }

    pub fn trades(&mut self, ts: &[Trade]) {
        for t in ts {
            self.parts.push(
                1,
                &[
                    Cell::S(&self.stream),
                    Cell::S(&self.role),
                    Cell::U(t.seq),
                    Cell::I(t.time_ns),
                    Cell::U(t.order_seq),
                    Cell::S(&t.instrument),
                    Cell::S(&t.side),
                    Cell::F(t.price),
                    Cell::F(t.qty),
                    Cell::F(t.fee),
                    Cell::S(t.liquidity),
                ],
            );
        }
    }

    pub fn equity(&mut self, ps: &[EquityPoint]) {
        for p in ps {
            self.parts.push(
                2,
                &[
                    Cell::S(&self.stream),
                    Cell::S(&self.role),
                    Cell::U(p.seq),
                    Cell::I(p.time_ns),
                    Cell::F(p.equity),
                    Cell::F(p.drawdown),
                ],
            );
        }
    }

    /// Closes the parts; the first error met while writing, if any.
    pub fn finish(mut self) -> Result<SideFiles> {
        if let Some(e) = self.parts.error.take() {
            return Err(e);
        }
        let [a, b, c] = self.parts.open.take().expect("open until finished");
        Ok(SideFiles([a.close()?, b.close()?, c.close()?]))
    }
}

/// The final writer of one artifact, fed batches of exactly [`CHUNK`] rows.
struct Rechunk {
    path: PathBuf,
    schema: SchemaRef,
    w: ArrowWriter<File>,
    pending: Vec<RecordBatch>,
    rows: usize,
}

impl Rechunk {
    fn push(&mut self, batch: RecordBatch) -> Result<()> {
        self.rows += batch.num_rows();
        self.pending.push(batch);
        self.emit(false)
    }

    fn emit(&mut self, all: bool) -> Result<()> {
        while self.rows >= CHUNK || (all && self.rows > 0) {
            let joined = arrow_select::concat::concat_batches(&self.schema, self.pending.iter())
                .map_err(|e| engine(&self.path, e))?;
            let n = joined.num_rows().min(CHUNK);
            self.w
                .write(&joined.slice(0, n))
                .map_err(|e| engine(&self.path, e))?;
            self.pending.clear();
            self.rows = joined.num_rows() - n;
            if self.rows > 0 {
                self.pending.push(joined.slice(n, self.rows));
            }
        }
        Ok(())
    }
}

/// Writes the three artifacts into `dir` from the sides' parts, rows in the order of `sides`.
pub fn assemble(dir: &Path, sides: &[SideFiles]) -> Result<()> {
    for (i, name) in FILES.iter().enumerate() {
        let path = dir.join(name);
        let schema = schema(i);
        let tmp = path.with_extension(format!("parquet.tmp{}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP))
            .set_max_row_group_bytes(None)
            .build();
        let w = ArrowWriter::try_new(file, schema.clone(), Some(props))
            .map_err(|e| engine(&path, e))?;
        let mut out = Rechunk {
            path: path.clone(),
            schema,
            w,
            pending: Vec::new(),
            rows: 0,
        };
        for side in sides {
            let part = &side.0[i];
            let f = File::open(part).map_err(|e| Error::io(part, e))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(f)
                .and_then(|b| b.with_batch_size(CHUNK).build())
                .map_err(|e| engine(part, e))?;
            for batch in reader {
                out.push(batch.map_err(|e| engine(part, e))?)?;
            }
        }
        out.emit(true)?;
        out.w.close().map_err(|e| engine(&path, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}
