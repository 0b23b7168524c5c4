//! The file store's log on disk: its part files, their lines, and torn tails.
//!
//! Invariants:
//! - A line counts once it ends in `\n`. An unterminated last line is a write in flight (or
//!   torn by a crash): readers skip it as not yet written and never change it; only a writer,
//!   under the writer lock, moves it to `quarantine/` ([`quarantine_torn_tail`]).
//! - Parts are walked in name order (days, then part numbers), so every reader sees one order.
//! - Only `day=YYYY-MM-DD/part-NNNNNN.jsonl` files are log parts; anything else in `events/`
//!   (a repair's temporary file, say) is never read.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::StreamInfo;
use super::dirs::sorted_entries;
use crate::error::{Error, Result};

/// What one scan of the log (or the index) says about the streams.
#[derive(Debug, Default)]
pub(super) struct LogView {
    pub(super) infos: BTreeMap<String, StreamInfo>,
    /// The day partition of each stream's last event.
    pub(super) last_day: BTreeMap<String, String>,
}

pub(super) fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|e| Error::io(path, e))
}

/// Whether `p` is a log part (`part-NNNNNN.jsonl`).
fn is_part(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("part-"))
        .and_then(|n| n.strip_suffix(".jsonl"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The day directories of the log (`day`, path), oldest first.
pub(super) fn days(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    Ok(sorted_entries(&root.join("events"))?
        .into_iter()
        .filter_map(|d| {
            let day = d.file_name()?.to_str()?.strip_prefix("day=")?.to_string();
            d.is_dir().then_some((day, d))
        })
        .collect())
}

/// The parts of one day directory, oldest first.
pub(super) fn parts_of(day_dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(sorted_entries(day_dir)?
        .into_iter()
        .filter(|p| is_part(p))
        .collect())
}

/// Every part file of the log, oldest first.
pub(super) fn parts(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for (_, dir) in days(root)? {
        out.extend(parts_of(&dir)?);
    }
    Ok(out)
}

/// The part to append to in `day_dir`: the newest, unless it has reached `max_bytes`.
pub(super) fn part_for(day_dir: &Path, max_bytes: u64) -> Result<PathBuf> {
    io(day_dir, fs::create_dir_all(day_dir))?;
    let existing = parts_of(day_dir)?;
    let Some(last) = existing.last() else {
        return Ok(day_dir.join("part-000000.jsonl"));
    };
    if io(last, fs::metadata(last))?.len() < max_bytes {
        return Ok(last.clone());
    }
    let n: u64 = last
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| {
            n.strip_prefix("part-")?
                .strip_suffix(".jsonl")?
                .parse()
                .ok()
        })
        .unwrap_or(existing.len() as u64);
    Ok(day_dir.join(format!("part-{:06}.jsonl", n + 1)))
}

/// Calls `f` on each complete line of `part` (without its `\n`) with its 1-based number.
/// Returns the length of an unterminated last line (0 if none), which is not handed to `f`.
pub(super) fn lines(part: &Path, f: &mut dyn FnMut(&[u8], u64) -> Result<()>) -> Result<u64> {
    let mut r = BufReader::with_capacity(1 << 20, io(part, File::open(part))?);
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        buf.clear();
        let got = io(part, r.read_until(b'\n', &mut buf))?;
        if got == 0 {
            return Ok(0);
        }
        if buf.last() != Some(&b'\n') {
            return Ok(buf.len() as u64);
        }
        n += 1;
        buf.pop();
        f(&buf, n)?;
    }
}

/// Where an unterminated last line of `part` starts, if it has one (reads only the tail when
/// the part ends in `\n`).
pub(super) fn torn_tail_at(part: &Path) -> Result<Option<u64>> {
    let mut f = io(part, File::open(part))?;
    let len = io(part, f.metadata())?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut last = [0u8];
    io(part, f.seek(SeekFrom::Start(len - 1)))?;
    io(part, f.read_exact(&mut last))?;
    if last[0] == b'\n' {
        return Ok(None);
    }
    io(part, f.seek(SeekFrom::Start(0)))?;
    let mut keep = 0u64;
    let mut r = BufReader::new(f);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        io(part, r.read_until(b'\n', &mut buf))?;
        if buf.last() != Some(&b'\n') {
            return Ok(Some(keep));
        }
        keep += buf.len() as u64;
    }
}

/// A file name under `quarantine/` for `part`'s bytes from `at`, unique (never overwrites).
fn torn_name(root: &Path, part: &Path, at: u64) -> PathBuf {
    let day = part
        .parent()
        .and_then(|d| d.file_name())
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = format!(
        "torn-{day}-{}-at-{at}",
        part.file_name().unwrap().to_string_lossy()
    );
    let q = root.join("quarantine");
    (0..)
        .map(|i| match i {
            0 => q.join(format!("{base}.bin")),
            i => q.join(format!("{base}.{i}.bin")),
        })
        .find(|p| !p.exists())
        .expect("a free name")
}

/// Moves an unterminated last line of `part` (a write torn by a crash) to `quarantine/`.
/// Only for a holder of the writer lock: anyone else's unterminated line is a write in flight.
/// Returns where it went.
pub(super) fn quarantine_torn_tail(root: &Path, part: &Path) -> Result<Option<PathBuf>> {
    let Some(keep) = torn_tail_at(part)? else {
        return Ok(None);
    };
    let mut f = io(part, OpenOptions::new().read(true).write(true).open(part))?;
    let mut tail = Vec::new();
    io(part, f.seek(SeekFrom::Start(keep)))?;
    io(part, f.read_to_end(&mut tail))?;
    let q = root.join("quarantine");
    io(&q, fs::create_dir_all(&q))?;
    let dest = torn_name(root, part, keep);
    io(&dest, fs::write(&dest, &tail))?;
    io(&dest, File::open(&dest).and_then(|f| f.sync_all()))?;
    io(part, f.set_len(keep))?;
    io(part, f.sync_all())?;
    eprintln!(
        "warning: {}: torn write of {} bytes at the end moved to {}",
        part.display(),
        tail.len(),
        dest.display()
    );
    Ok(Some(dest))
}
