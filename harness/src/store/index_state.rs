//! Whether the file store's index can serve reads: fresh (it covers exactly the log as it is
//! now, by content checksum), missing, stale, or unusable (damaged). Readers use only a fresh
//! index; anything else sends them to the log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::index::{Manifest, VERSION, log_days, read_manifest};
use super::verified::{Checked, Outcome, Stamps};
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

/// Whether the index at `root` covers exactly the log as it is now, and can be read. Files
/// whose verification stamp still holds are not hashed again (see [`super::verified`]).
pub fn state(root: &Path) -> Result<IndexState> {
    check(root, Stamps::load(root))
}

/// [`state`], hashing every log part and index file whatever their stamps say (fsck).
pub(super) fn state_hashed(root: &Path) -> Result<IndexState> {
    check(root, Stamps::none(root))
}

fn check(root: &Path, stamps: Stamps) -> Result<IndexState> {
    let m = match read_manifest(root) {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(IndexState::Missing),
        Err(e) => return Ok(IndexState::Unusable(e.to_string())),
    };
    if m.version != VERSION {
        return Ok(IndexState::Unusable(format!(
            "it was built by another version of tapedeck (index format {}, this one reads {VERSION})",
            m.version
        )));
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
    // Every index file, then every log part, checked on every core (they are independent).
    let mut files: Vec<(PathBuf, &str, bool)> = Vec::new();
    for (day, e) in &m.days {
        let path = root.join(format!("index/day={day}.parquet"));
        if !path.is_file() {
            return Ok(IndexState::Unusable(format!(
                "{} is missing",
                path.display()
            )));
        }
        files.push((path, e.file_sha256.as_str(), true));
    }
    for (day, parts) in &log {
        let sums = &m.days[day].checksums;
        for ((_, _, path), sum) in parts.iter().zip(sums) {
            files.push((path.clone(), sum.as_str(), false));
        }
    }
    let outcomes: Vec<Outcome> = {
        use rayon::prelude::*;
        files
            .par_iter()
            .map(|(path, sum, _)| stamps.check(path, sum))
            .collect::<Result<_>>()?
    };
    let mut kept = BTreeMap::new();
    let mut state = IndexState::Fresh(m.clone());
    for ((path, _, is_index), (checked, stamp)) in files.iter().zip(outcomes) {
        kept.extend(stamp);
        if checked == Checked::Differs {
            state = match is_index {
                true => IndexState::Unusable(format!(
                    "{} does not match its checksum in the manifest",
                    path.display()
                )),
                false => IndexState::Stale,
            };
            break;
        }
    }
    if matches!(state, IndexState::Fresh(_)) {
        stamps.save(kept);
    }
    Ok(state)
}
