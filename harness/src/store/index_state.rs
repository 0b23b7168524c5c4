//! Whether the file store's index can serve reads: fresh (it covers exactly the log as it is
//! now, by content checksum), missing, stale, or unusable (damaged). Readers use only a fresh
//! index; anything else sends them to the log.

use std::path::Path;

use super::checksum::sha256_file;
use super::index::{Manifest, VERSION, day_file_problem, log_days, read_manifest};
use crate::error::Result;

/// Whether the index can serve reads.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexState {
    /// It covers exactly the log as it is now.
    Fresh(Manifest),
    /// There is none.
    Missing,
    /// It was built from another state of the log (reads go to the log).
    Stale,
    /// It is damaged (reads go to the log): why.
    Unusable(String),
}

/// Whether the index at `root` covers exactly the log as it is now, and can be read.
pub fn state(root: &Path) -> Result<IndexState> {
    let m = match read_manifest(root) {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(IndexState::Missing),
        Err(e) => return Ok(IndexState::Unusable(e.to_string())),
    };
    if m.version != VERSION {
        return Ok(IndexState::Stale);
    }
    let log = log_days(root)?;
    let same_parts = log.len() == m.days.len()
        && log.iter().all(|(day, parts)| {
            m.days.get(day).is_some_and(|e| {
                e.parts.len() == parts.len()
                    && e.checksums.len() == parts.len()
                    && e.parts
                        .iter()
                        .zip(parts)
                        .all(|(a, b)| a.0 == b.0 && a.1 == b.1)
            })
        });
    if !same_parts {
        return Ok(IndexState::Stale);
    }
    for day in m.days.keys() {
        if let Some(why) = day_file_problem(root, &m, day)? {
            return Ok(IndexState::Unusable(why));
        }
    }
    // The log parts' checksums, on every core (the parts are independent).
    let parts: Vec<(&Path, &String)> = log
        .iter()
        .flat_map(|(day, parts)| {
            parts
                .iter()
                .zip(&m.days[day].checksums)
                .map(|((_, _, path), sum)| (path.as_path(), sum))
        })
        .collect();
    let same: Vec<bool> = {
        use rayon::prelude::*;
        parts
            .par_iter()
            .map(|(path, sum)| sha256_file(path).map(|s| s == **sum))
            .collect::<Result<_>>()?
    };
    if same.contains(&false) {
        return Ok(IndexState::Stale);
    }
    Ok(IndexState::Fresh(m))
}
