//! Parquet artifacts of a regression or backtest run, readable by polars and pandas:
//! `decisions.parquet`, `trades.parquet`, `equity_curve.parquet`. Rows are in (stream, role,
//! seq) order and the files carry no timestamps, so identical runs write identical bytes.
//! The `json` column of `decisions.parquet` is [`Output::to_json_named`] (instruments by
//! symbol), as in every report.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::decision::{Decision, Output, side_name};
use crate::error::{Error, Result};
use crate::regress::{BASELINE, CANDIDATE, RegressReport};
use crate::venue::Performance;

enum Col<'a> {
    Str(&'static str, Vec<String>),
    /// Borrowed text (the stream and role tags: one per row, no copy each).
    Tag(&'static str, Vec<&'a str>),
    OptStr(&'static str, Vec<Option<String>>),
    U64(&'static str, Vec<u64>),
    I64(&'static str, Vec<i64>),
    F64(&'static str, Vec<f64>),
}

fn write(path: &Path, cols: Vec<Col<'_>>) -> Result<()> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for c in cols {
        let (f, a): (Field, ArrayRef) = match c {
            Col::Str(n, v) => (
                Field::new(n, DataType::Utf8, false),
                Arc::new(StringArray::from(v)),
            ),
            Col::Tag(n, v) => (
                Field::new(n, DataType::Utf8, false),
                Arc::new(StringArray::from(v)),
            ),
            Col::OptStr(n, v) => (
                Field::new(n, DataType::Utf8, true),
                Arc::new(StringArray::from(v)),
            ),
            Col::U64(n, v) => (
                Field::new(n, DataType::UInt64, false),
                Arc::new(UInt64Array::from(v)),
            ),
            Col::I64(n, v) => (
                Field::new(n, DataType::Int64, false),
                Arc::new(Int64Array::from(v)),
            ),
            Col::F64(n, v) => (
                Field::new(n, DataType::Float64, false),
                Arc::new(Float64Array::from(v)),
            ),
        };
        fields.push(f);
        arrays.push(a);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|e| Error::engine(format!("building {}", path.display()), e))?;
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut w = ArrowWriter::try_new(file, schema, Some(props))
        .map_err(|e| Error::engine(format!("writing {}", path.display()), e))?;
    w.write(&batch)
        .map_err(|e| Error::engine(format!("writing {}", path.display()), e))?;
    w.close()
        .map_err(|e| Error::engine(format!("writing {}", path.display()), e))?;
    Ok(())
}

/// One strategy's items on one stream: what a row of the artifacts is tagged with.
pub struct Side<'a> {
    pub stream: &'a str,
    pub role: &'a str,
    pub decisions: &'a [Decision],
    pub performance: &'a Performance,
    /// Its stream's instrument table: the `json` column names instruments by symbol.
    pub instruments: &'a tapedeck_guest::Instruments,
}

/// Writes the regression's three artifacts into `dir`.
pub fn write_regress_artifacts(dir: &Path, r: &RegressReport) -> Result<()> {
    let mut sides = Vec::new();
    for s in &r.streams {
        for (k, role) in [BASELINE, CANDIDATE].into_iter().enumerate() {
            sides.push(Side {
                stream: &s.stream,
                role,
                decisions: &s.decisions[k],
                performance: if k == 0 { &s.baseline } else { &s.candidate },
                instruments: &s.instruments,
            });
        }
    }
    write_artifacts(dir, &sides)
}

/// Writes the three artifacts into `dir`, rows in the order of `sides` then seq.
pub fn write_artifacts(dir: &Path, sides: &[Side<'_>]) -> Result<()> {
    // One row per item, tagged with its stream and role; each column is a map over the rows.
    fn rows<'a, T>(
        sides: &'a [Side<'a>],
        items: impl Fn(&'a Side<'a>) -> &'a [T],
    ) -> Vec<(&'a str, &'a str, &'a T)> {
        let mut out = Vec::new();
        for s in sides {
            out.extend(items(s).iter().map(|x| (s.stream, s.role, x)));
        }
        out
    }
    fn tags<'a, T>(rows: &[(&'a str, &'a str, &T)]) -> [Col<'a>; 2] {
        [
            Col::Tag("stream", rows.iter().map(|r| r.0).collect()),
            Col::Tag("role", rows.iter().map(|r| r.1).collect()),
        ]
    }
    macro_rules! col {
        ($rows:expr, $kind:ident, $name:literal, |$x:ident| $e:expr) => {
            Col::$kind(
                $name,
                $rows
                    .iter()
                    .map(|r| {
                        let $x = r.2;
                        $e
                    })
                    .collect(),
            )
        };
    }

    let d = rows(sides, |s| s.decisions);
    // Orders fill the side, price and qty columns; every output has its JSON.
    let order = |o: &Output| match o {
        Output::NewOrder {
            side, price, qty, ..
        } => Some((side_name(*side), *price, *qty)),
        _ => None,
    };
    let mut cols = Vec::from(tags(&d));
    cols.extend([
        col!(d, U64, "seq", |x| x.seq),
        col!(d, I64, "time_ns", |x| x.time_ns),
        col!(d, Str, "output", |x| x.output.kind().to_string()),
        col!(d, OptStr, "side", |x| order(&x.output)
            .map(|o| o.0.to_string())),
        col!(d, OptStr, "price", |x| order(&x.output)
            .map(|o| o.1.to_string())),
        col!(d, OptStr, "qty", |x| order(&x.output)
            .map(|o| o.2.to_string())),
    ]);
    // The JSON names instruments by symbol, from each stream's table.
    let names: std::collections::BTreeMap<&str, &tapedeck_guest::Instruments> =
        sides.iter().map(|s| (s.stream, s.instruments)).collect();
    cols.push(Col::Str(
        "json",
        d.iter()
            .map(|(stream, _, x)| x.output.to_json_named(names[stream]).to_string())
            .collect(),
    ));
    write(&dir.join("decisions.parquet"), cols)?;

    let t = rows(sides, |s| &s.performance.fills);
    let mut cols = Vec::from(tags(&t));
    cols.extend([
        col!(t, U64, "seq", |x| x.seq),
        col!(t, I64, "time_ns", |x| x.time_ns),
        col!(t, U64, "order_seq", |x| x.order_seq),
        col!(t, Str, "instrument", |x| x.instrument.clone()),
        col!(t, Str, "side", |x| x.side.clone()),
        col!(t, F64, "price", |x| x.price),
        col!(t, F64, "qty", |x| x.qty),
        col!(t, F64, "fee", |x| x.fee),
        col!(t, Str, "liquidity", |x| x.liquidity.to_string()),
    ]);
    write(&dir.join("trades.parquet"), cols)?;

    let e = rows(sides, |s| &s.performance.equity);
    let mut cols = Vec::from(tags(&e));
    cols.extend([
        col!(e, U64, "seq", |x| x.seq),
        col!(e, I64, "time_ns", |x| x.time_ns),
        col!(e, F64, "equity", |x| x.equity),
        col!(e, F64, "drawdown", |x| x.drawdown),
    ]);
    write(&dir.join("equity_curve.parquet"), cols)
}
