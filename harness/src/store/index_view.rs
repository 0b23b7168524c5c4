//! The index's stream summaries recomputed from its rows: what `fsck` checks the summaries in
//! the day files' footers against (readers trust the footers: the files are checksummed).

use std::collections::BTreeMap;
use std::path::Path;

use arrow_array::{Int64Array, StringArray, UInt64Array};

use super::index::{DayStream, Manifest, col, decoding, engine, open_index_file, projected_reader};
use crate::error::Result;

/// Each stream's summary in `day`'s index file of `manifest`, from the file's rows.
pub fn day_streams_from_rows(
    root: &Path,
    manifest: &Manifest,
    day: &str,
) -> Result<BTreeMap<String, DayStream>> {
    let mut out = BTreeMap::new();
    if !manifest.days.contains_key(day) {
        return Ok(out);
    }
    let path = root.join(format!("index/day={day}.parquet"));
    let builder = open_index_file(&path)?;
    let groups = (0..builder.metadata().num_row_groups()).collect();
    let mut reader = projected_reader(&path, builder, groups, [0, 1, 2, 3])?;
    while let Some(batch) = decoding(&path, || Ok(reader.next()))? {
        let batch = batch.map_err(engine(&path))?;
        let keys = col::<StringArray>(&batch, 0);
        let seqs = col::<UInt64Array>(&batch, 1);
        let times = col::<Int64Array>(&batch, 2);
        let types = col::<StringArray>(&batch, 3);
        for i in 0..batch.num_rows() {
            let (key, ty) = (keys.value(i), types.value(i));
            DayStream::add(&mut out, key, seqs.value(i), times.value(i), ty, &path)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SeqRange;
    use crate::store::index::{DayEntry, read_records};
    use arrow_array::{ArrayRef, BinaryArray, RecordBatch};
    use parquet::arrow::ArrowWriter;
    use std::path::PathBuf;
    use std::sync::Arc;

    /// A store root whose only index day, `x`, holds `bytes`, and a manifest naming it.
    fn root_with(name: &str, bytes: &[u8]) -> (PathBuf, Manifest) {
        let root = std::env::temp_dir().join(format!("tapedeck-ix-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("index")).unwrap();
        std::fs::write(root.join("index/day=x.parquet"), bytes).unwrap();
        let mut m = Manifest::default();
        m.days.insert("x".into(), DayEntry::default());
        (root, m)
    }

    fn parquet(cols: Vec<(&str, ArrayRef)>) -> Vec<u8> {
        let batch = RecordBatch::try_from_iter(cols).unwrap();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        out
    }

    /// Both readers on the index of `root` (`read_records` of `stream`): the error of each.
    fn read_errors(root: &Path, m: &Manifest, stream: &str) -> (String, String) {
        let infos = day_streams_from_rows(root, m, "x")
            .map(drop)
            .unwrap_err()
            .to_string();
        let records = read_records(root, m, stream, SeqRange::ALL, &mut |_, _, _| Ok(()))
            .unwrap_err()
            .to_string();
        (infos, records)
    }

    #[test]
    fn a_damaged_index_file_is_an_error_not_a_panic() {
        // See: fuzz target index_reader, fuzz/corpus/index_reader/crash-parquet-decoder-panic
        // (a changed byte in a dictionary page: the Parquet decoder panicked "Decoder for dict
        // should have been set", which aborted replay and `streams`).
        let input = include_bytes!("../../../fuzz/corpus/index_reader/crash-parquet-decoder-panic");
        let (root, m) = root_with("damaged", &input[1..]);
        let (infos, records) = read_errors(&root, &m, "exec:sim:SYM1");
        for e in [infos, records] {
            assert!(e.contains("rebuild the index"), "{e}");
        }
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn an_index_file_with_other_columns_is_an_error_not_a_panic() {
        // See: fuzz target index_reader (mode 2, foreign column types): the readers cast
        // columns with `expect("the index schema")` and panicked on any other file.
        let bytes = parquet(vec![
            (
                "stream_key",
                Arc::new(Int64Array::from(vec![1])) as ArrayRef,
            ),
            ("seq", Arc::new(UInt64Array::from(vec![1]))),
        ]);
        let (root, m) = root_with("foreign", &bytes);
        let (infos, records) = read_errors(&root, &m, "s");
        for e in [infos, records] {
            assert!(e.contains("not an index file"), "{e}");
        }
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_seq_of_u64_max_in_the_index_is_corrupt_not_an_overflow() {
        // See: fuzz target index_reader (mode 1, rows of the index schema): `last_seq + 1`
        // overflowed on a row after seq u64::MAX.
        let n = 2;
        let bytes = parquet(vec![
            (
                "stream_key",
                Arc::new(StringArray::from(vec!["s"; n])) as ArrayRef,
            ),
            ("seq", Arc::new(UInt64Array::from(vec![u64::MAX, 5]))),
            ("occurred_at", Arc::new(Int64Array::from(vec![0; n]))),
            ("event_type", Arc::new(StringArray::from(vec!["quote"; n]))),
            (
                "instrument",
                Arc::new(StringArray::from(vec![None::<&str>; n])),
            ),
            (
                "record",
                Arc::new(BinaryArray::from_iter_values([[0u8; 4]; 2])),
            ),
        ]);
        let (root, m) = root_with("seq-max", &bytes);
        let e = day_streams_from_rows(&root, &m, "x")
            .map(drop)
            .unwrap_err()
            .to_string();
        assert!(e.contains("seq 5 follows seq 18446744073709551615"), "{e}");
        std::fs::remove_dir_all(root).unwrap();
    }
}
