//! Which instruments a stream names, from the file store's index: most row groups say so in
//! their statistics (one stream, one instrument, no nulls) and are not read at all; the
//! others are read for their `stream_key` and `instrument` columns only.

use std::collections::BTreeMap;
use std::path::Path;

use arrow_array::{Array, StringArray};
use parquet::data_type::AsBytes;
use parquet::file::statistics::Statistics;

use super::index::{
    Manifest, col, decoding, engine, groups_holding, open_index_file, projected_reader,
};
use crate::error::Result;

/// The instruments of `stream` (symbol by guest instrument id), from the index. A row group
/// holding only this stream and one instrument says so in its statistics and is not read;
/// the others are read for their two key columns only.
pub fn instruments(
    root: &Path,
    manifest: &Manifest,
    stream: &str,
) -> Result<BTreeMap<u32, String>> {
    let mut out = BTreeMap::new();
    let one = |s: Option<&Statistics>| match s {
        Some(Statistics::ByteArray(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(lo), Some(hi)) if lo == hi => Some(lo.as_bytes().to_vec()),
            _ => None,
        },
        _ => None,
    };
    for day in manifest.days.keys() {
        let path = root.join(format!("index/day={day}.parquet"));
        let builder = open_index_file(&path)?;
        let meta = builder.metadata().clone();
        let mut read = Vec::new();
        for g in groups_holding(&meta, stream) {
            let rg = meta.row_group(g);
            let key = rg.column(0).statistics();
            let only_this = one(key).is_some_and(|k| k == stream.as_bytes());
            let instrument = rg.column(4).statistics();
            match (
                only_this,
                one(instrument),
                instrument.map(|s| s.null_count_opt()),
            ) {
                (true, Some(sym), Some(Some(0))) => {
                    let sym = String::from_utf8_lossy(&sym).into_owned();
                    out.insert(crate::event::instrument_id(&sym), sym);
                }
                _ => read.push(g),
            }
        }
        if read.is_empty() {
            continue;
        }
        let mut reader = projected_reader(&path, builder, read, [0, 4])?;
        while let Some(batch) = decoding(&path, || Ok(reader.next()))? {
            let batch = batch.map_err(engine(&path))?;
            let keys = col::<StringArray>(&batch, 0);
            let syms = col::<StringArray>(&batch, 1);
            for i in 0..batch.num_rows() {
                if keys.is_null(i) || keys.value(i) != stream || syms.is_null(i) {
                    continue;
                }
                let sym = syms.value(i);
                if !out.values().any(|s: &String| s == sym) {
                    out.insert(crate::event::instrument_id(sym), sym.to_string());
                }
            }
        }
    }
    Ok(out)
}
