//! Directory listings for the file store and its index: entries sorted by name, so every
//! walk of the log (parts, days) sees the same order on every machine; and which files of a
//! snapshot directory are stored snapshots.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Directory entries sorted by name (empty if the directory does not exist).
pub(super) fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// Whether `p` is named like a stored snapshot (`<seq>.<projector>.json`); temporary files of
/// an interrupted write (`*.tmpNNN`) are not.
pub(super) fn is_snapshot_file(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".json"))
        .and_then(|n| n.split_once('.'))
        .is_some_and(|(seq, _)| !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()))
}
