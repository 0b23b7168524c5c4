//! Directory listings for the file store and its index: entries sorted by name, so every
//! walk of the log (parts, days) sees the same order on every machine.

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
