//! Parquet artifacts of a regression run, readable by polars and pandas:
//! `decisions.parquet`, `trades.parquet`, `equity_curve.parquet`. Rows are in (stream, role,
//! seq) order and the files carry no timestamps, so identical runs write identical bytes.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::regress::{BASELINE, CANDIDATE, RegressReport};

enum Col {
    Str(&'static str, Vec<String>),
    OptStr(&'static str, Vec<Option<String>>),
    U64(&'static str, Vec<u64>),
    I64(&'static str, Vec<i64>),
    F64(&'static str, Vec<f64>),
}

fn write(path: &Path, cols: Vec<Col>) -> Result<()> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for c in cols {
        let (f, a): (Field, ArrayRef) = match c {
            Col::Str(n, v) => (
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

/// Writes the three artifacts into `dir`.
pub fn write_regress_artifacts(dir: &Path, r: &RegressReport) -> Result<()> {
    let roles = [BASELINE, CANDIDATE];
    // decisions
    let (mut stream, mut role, mut seq, mut time, mut kind, mut side, mut price, mut qty, mut json) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for s in &r.streams {
        for (k, ds) in s.decisions.iter().enumerate() {
            for d in ds {
                stream.push(s.stream.clone());
                role.push(roles[k].to_string());
                seq.push(d.seq);
                time.push(d.time_ns);
                kind.push(d.output["output"].as_str().unwrap_or("").to_string());
                side.push(d.output["side"].as_str().map(str::to_string));
                price.push(d.output["price"].as_str().map(str::to_string));
                qty.push(d.output["qty"].as_str().map(str::to_string));
                json.push(d.output.to_string());
            }
        }
    }
    write(
        &dir.join("decisions.parquet"),
        vec![
            Col::Str("stream", stream),
            Col::Str("role", role),
            Col::U64("seq", seq),
            Col::I64("time_ns", time),
            Col::Str("output", kind),
            Col::OptStr("side", side),
            Col::OptStr("price", price),
            Col::OptStr("qty", qty),
            Col::Str("json", json),
        ],
    )?;
    // trades
    let (
        mut stream,
        mut role,
        mut seq,
        mut time,
        mut order_seq,
        mut inst,
        mut side,
        mut price,
        mut qty,
        mut fee,
        mut liq,
    ) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for s in &r.streams {
        for (k, p) in [&s.baseline, &s.candidate].into_iter().enumerate() {
            for t in &p.fills {
                stream.push(s.stream.clone());
                role.push(roles[k].to_string());
                seq.push(t.seq);
                time.push(t.time_ns);
                order_seq.push(t.order_seq);
                inst.push(t.instrument.clone());
                side.push(t.side.clone());
                price.push(t.price);
                qty.push(t.qty);
                fee.push(t.fee);
                liq.push(t.liquidity.to_string());
            }
        }
    }
    write(
        &dir.join("trades.parquet"),
        vec![
            Col::Str("stream", stream),
            Col::Str("role", role),
            Col::U64("seq", seq),
            Col::I64("time_ns", time),
            Col::U64("order_seq", order_seq),
            Col::Str("instrument", inst),
            Col::Str("side", side),
            Col::F64("price", price),
            Col::F64("qty", qty),
            Col::F64("fee", fee),
            Col::Str("liquidity", liq),
        ],
    )?;
    // equity curve
    let (mut stream, mut role, mut seq, mut time, mut equity, mut dd) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for s in &r.streams {
        for (k, p) in [&s.baseline, &s.candidate].into_iter().enumerate() {
            for e in &p.equity {
                stream.push(s.stream.clone());
                role.push(roles[k].to_string());
                seq.push(e.seq);
                time.push(e.time_ns);
                equity.push(e.equity);
                dd.push(e.drawdown);
            }
        }
    }
    write(
        &dir.join("equity_curve.parquet"),
        vec![
            Col::Str("stream", stream),
            Col::Str("role", role),
            Col::U64("seq", seq),
            Col::I64("time_ns", time),
            Col::F64("equity", equity),
            Col::F64("drawdown", dd),
        ],
    )
}
