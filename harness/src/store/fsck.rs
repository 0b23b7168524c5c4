//! `fsck` for the file store: checks the log, the index, the stored snapshots and the
//! quarantine, and repairs what it finds by moving it aside, never by deleting.
//!
//! Findings are data ([`FsckReport`]), not errors. What is checked:
//! - log: every complete line is an envelope; seqs are gapless from 1 per stream in log order
//!   (a duplicate, a gap or a start past 1 is a finding on the line that breaks it); an
//!   unterminated last line (torn by a crash, or a write in flight when no writer holds the
//!   lock... `check` cannot tell, `repair` holds the lock so it can);
//! - index: the manifest parses; each day's file is there, matches its checksum and decodes
//!   (a stale index is a note, not a finding: readers ignore it);
//! - snapshots: each `<seq>.<projector>.json` parses, sits in its stream's folder and has a seq
//!   within its stream; any other file there (a `*.tmpNNN` of an interrupted write) is a finding;
//! - quarantine: each repair's `NOTE.json` parses.
//!
//! Invariant of [`repair`]: under the writer lock, each damaged file is moved (whole files) or
//! copied (log parts, whose good lines stay in place) into a fresh `quarantine/fsck-N/` with a
//! `NOTE.json` saying where each thing came from and why; then the index is rebuilt.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::dirs::is_snapshot_file;
use super::file::FileStore;
use super::index::{day_file_problem, day_streams, read_manifest};
use super::index_state::state_hashed;
use super::index_view::day_streams_from_rows;
use super::log::{self, io};
use super::{IndexState, StoredSnapshot};
use crate::error::Result;
use crate::event::Envelope;
use crate::names::file_name;

/// What kind of thing is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    TornTail,
    NotAnEnvelope,
    SeqOrder,
    IndexManifest,
    IndexFile,
    Snapshot,
    TempFile,
    Quarantine,
}

/// One thing wrong, at a path relative to the store's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub class: Class,
    pub path: PathBuf,
    pub line: Option<u64>,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What `check` or `repair` found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FsckReport {
    pub findings: Vec<Finding>,
    /// Facts that are not defects (a stale index, what the quarantine holds).
    pub notes: Vec<String>,
    /// What `repair` moved where.
    pub repairs: Vec<String>,
    /// Findings still there after `repair` (empty when it fixed everything).
    pub remaining: Vec<Finding>,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// A check's findings, with what a repair needs.
#[derive(Default)]
struct Scan {
    report: FsckReport,
    /// Per log part: its bad lines, and where a torn tail starts.
    parts: BTreeMap<PathBuf, (Vec<u64>, Option<u64>)>,
    /// Whole files to move aside.
    files: Vec<PathBuf>,
}

impl Scan {
    fn find(&mut self, root: &Path, class: Class, path: &Path, line: Option<u64>, msg: String) {
        self.report.findings.push(Finding {
            class,
            path: path.strip_prefix(root).unwrap_or(path).to_path_buf(),
            line,
            message: msg,
        });
    }
}

/// Checks the store at `root` without changing it (no lock taken).
pub fn check(root: &Path) -> Result<FsckReport> {
    Ok(scan(root)?.report)
}

fn scan(root: &Path) -> Result<Scan> {
    let mut s = Scan::default();
    let last = check_log(root, &mut s)?;
    check_index(root, &mut s)?;
    check_snapshots(root, &last, &mut s)?;
    check_quarantine(root, &mut s)?;
    Ok(s)
}

/// The log's findings; returns each stream's last good seq.
fn check_log(root: &Path, s: &mut Scan) -> Result<BTreeMap<String, u64>> {
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for part in log::parts(root)? {
        let mut bad = Vec::new();
        let mut found = Vec::new();
        let tail = log::lines(&part, &mut |line, n| {
            match serde_json::from_slice::<Envelope>(line) {
                Err(e) => {
                    bad.push(n);
                    found.push((
                        Class::NotAnEnvelope,
                        n,
                        format!("not an event envelope: {e}"),
                    ));
                }
                Ok(e) => {
                    let prev = last.get(&e.stream_key).copied().unwrap_or(0);
                    if e.seq == prev + 1 {
                        last.insert(e.stream_key, e.seq);
                    } else {
                        bad.push(n);
                        found.push((
                            Class::SeqOrder,
                            n,
                            format!(
                                "stream {} seq {} where seq {} was expected (a duplicate, gap or reordering)",
                                e.stream_key,
                                e.seq,
                                prev + 1
                            ),
                        ));
                    }
                }
            }
            Ok(())
        })?;
        for (class, n, msg) in found {
            s.find(root, class, &part, Some(n), msg);
        }
        let torn = (tail > 0).then(|| fs::metadata(&part).map(|m| m.len() - tail));
        let torn = torn
            .transpose()
            .map_err(|e| crate::error::Error::io(&part, e))?;
        if let Some(at) = torn {
            s.find(
                root,
                Class::TornTail,
                &part,
                None,
                format!("torn write: {tail} bytes without a line end at byte {at}"),
            );
        }
        if !bad.is_empty() || torn.is_some() {
            s.parts.insert(part, (bad, torn));
        }
    }
    Ok(last)
}

fn check_index(root: &Path, s: &mut Scan) -> Result<()> {
    let dir = root.join("index");
    for p in super::dirs::sorted_entries(&dir)? {
        if p.to_string_lossy().contains(".tmp") {
            let msg = "temporary file of an interrupted index rebuild".to_string();
            s.find(root, Class::TempFile, &p, None, msg);
            s.files.push(p);
        }
    }
    let m = match read_manifest(root) {
        Ok(Some(m)) => m,
        Ok(None) => {
            s.report.notes.push("no index (reads go to the log)".into());
            return Ok(());
        }
        Err(e) => {
            let path = dir.join("manifest.json");
            s.find(root, Class::IndexManifest, &path, None, e.to_string());
            s.files.push(path);
            return Ok(());
        }
    };
    for day in m.days.keys() {
        let path = dir.join(format!("day={day}.parquet"));
        let problem = match day_file_problem(root, &m, day)? {
            Some(p) => Some(p),
            None => match day_streams_from_rows(root, &m, day) {
                Err(e) => Some(e.to_string()),
                Ok(rows) if rows != day_streams(root, day)? => Some(format!(
                    "{}: its rows do not match the manifest's stream summaries",
                    path.display()
                )),
                Ok(_) => None,
            },
        };
        if let Some(p) = problem {
            s.find(root, Class::IndexFile, &path, None, p);
            if path.exists() {
                s.files.push(path);
            }
        }
    }
    if s.report
        .findings
        .iter()
        .all(|f| f.class != Class::IndexFile)
        && matches!(state_hashed(root)?, IndexState::Stale)
    {
        s.report
            .notes
            .push("the index is stale (reads go to the log until `tapedeck index rebuild`)".into());
    }
    Ok(())
}

fn check_snapshots(root: &Path, last: &BTreeMap<String, u64>, s: &mut Scan) -> Result<()> {
    for dir in super::dirs::sorted_entries(&root.join("snapshots"))? {
        let folder = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for p in super::dirs::sorted_entries(&dir)? {
            if !is_snapshot_file(&p) {
                let msg = if p.to_string_lossy().contains(".tmp") {
                    "temporary file of an interrupted snapshot write"
                } else {
                    "not a snapshot file name (<seq>.<projector>.json)"
                };
                s.find(root, Class::TempFile, &p, None, msg.into());
                s.files.push(p);
                continue;
            }
            let problem = match serde_json::from_slice::<StoredSnapshot>(&io(&p, fs::read(&p))?) {
                Err(e) => Some(format!("not a stored snapshot: {e}")),
                Ok(snap) if file_name(&snap.stream) != folder => Some(format!(
                    "a snapshot of stream {}, in another stream's folder",
                    snap.stream
                )),
                Ok(snap) => match last.get(&snap.stream) {
                    None => Some(format!(
                        "a snapshot of stream {}, which the log lacks",
                        snap.stream
                    )),
                    Some(&l) if snap.seq == 0 || snap.seq > l => Some(format!(
                        "seq {} is past the end of stream {} (last seq {l})",
                        snap.seq, snap.stream
                    )),
                    Some(_) => None,
                },
            };
            if let Some(msg) = problem {
                s.find(root, Class::Snapshot, &p, None, msg);
                s.files.push(p);
            }
        }
    }
    Ok(())
}

fn check_quarantine(root: &Path, s: &mut Scan) -> Result<()> {
    let entries = super::dirs::sorted_entries(&root.join("quarantine"))?;
    if !entries.is_empty() {
        s.report.notes.push(format!(
            "quarantine/ holds {} entr{} set aside earlier",
            entries.len(),
            if entries.len() == 1 { "y" } else { "ies" }
        ));
    }
    for e in entries {
        let note = e.join("NOTE.json");
        if e.is_dir()
            && e.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("fsck-"))
        {
            let ok = fs::read(&note)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some();
            if !ok {
                let msg = "a repair's note is missing or unreadable".to_string();
                s.find(root, Class::Quarantine, &note, None, msg);
            }
        }
    }
    Ok(())
}

/// Checks `store` under its writer lock (waiting as its options say), moves everything found
/// into `quarantine/fsck-N/`, rebuilds the index, and checks again (`remaining`).
pub fn repair(store: &mut FileStore) -> Result<FsckReport> {
    let root = store.root().to_path_buf();
    // What was wrong before the lock (taking it sets a torn tail aside already).
    let before = scan(&root)?.report;
    let lock = store.writer()?;
    let Scan {
        mut report,
        parts,
        files,
    } = scan(&root)?;
    if before.findings.iter().any(|f| f.class == Class::TornTail) {
        report
            .repairs
            .push("torn tails moved to quarantine/torn-* on taking the writer lock".into());
    }
    report.findings = before.findings;
    if report.findings.is_empty() {
        return Ok(report);
    }
    if parts.is_empty() && files.is_empty() {
        report.remaining = scan(&root)?.report.findings;
        return Ok(report);
    }
    let q = root.join("quarantine");
    let dest = (1..)
        .map(|n| q.join(format!("fsck-{n}")))
        .find(|d| !d.exists())
        .expect("a free name");
    let rel = |p: &Path| p.strip_prefix(&root).unwrap_or(p).to_path_buf();
    let mut notes = Vec::new();
    let lines_of = |class: Class, part: &Path| -> Vec<(u64, String)> {
        let r = rel(part);
        report
            .findings
            .iter()
            .filter(|f| f.path == r && f.class == class && f.line.is_some())
            .map(|f| (f.line.unwrap_or(0), f.message.clone()))
            .collect()
    };
    for (part, (bad, torn)) in &parts {
        let to = dest.join(rel(part));
        io(&to, fs::create_dir_all(to.parent().expect("under dest")))?;
        io(&to, fs::copy(part, &to))?;
        let mut kept = Vec::new();
        log::lines(part, &mut |line, n| {
            if !bad.contains(&n) {
                kept.extend_from_slice(line);
                kept.push(b'\n');
            }
            Ok(())
        })?;
        let tmp = part.with_extension("jsonl.fsck-tmp");
        let mut f = io(&tmp, fs::File::create(&tmp))?;
        io(&tmp, f.write_all(&kept))?;
        io(&tmp, f.sync_all())?;
        io(part, fs::rename(&tmp, part))?;
        let mut lines = lines_of(Class::NotAnEnvelope, part);
        lines.extend(lines_of(Class::SeqOrder, part));
        lines.sort();
        notes.push(serde_json::json!({
            "from": rel(part), "to": rel(&to),
            "what": "a copy of the log part as it was; the lines listed (and any torn tail) were taken out of the log",
            "lines": lines.iter().map(|(n, m)| serde_json::json!({"line": n, "why": m})).collect::<Vec<_>>(),
            "torn_tail_at": torn,
        }));
        report.repairs.push(format!(
            "{}: {} line(s){} moved to {}",
            rel(part).display(),
            bad.len(),
            if torn.is_some() {
                " and a torn tail"
            } else {
                ""
            },
            rel(&to).display()
        ));
    }
    for file in &files {
        let to = dest.join(rel(file));
        io(&to, fs::create_dir_all(to.parent().expect("under dest")))?;
        io(file, fs::rename(file, &to))?;
        let why: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.path == rel(file))
            .map(|f| f.message.clone())
            .collect();
        notes.push(serde_json::json!({"from": rel(file), "to": rel(&to), "why": why}));
        report.repairs.push(format!(
            "{} moved to {}",
            rel(file).display(),
            rel(&to).display()
        ));
    }
    io(&dest, fs::create_dir_all(&dest))?;
    let note =
        serde_json::to_vec_pretty(&serde_json::json!({ "moved": notes })).expect("notes serialize");
    crate::fs::write_atomic(&dest.join("NOTE.json"), &note)?;
    store.wrote(&lock);
    let rebuilt = store.rebuild_index(None)?;
    report.repairs.push(format!(
        "index rebuilt: {} day(s), {} rows",
        rebuilt.days.len(),
        rebuilt.rows
    ));
    report.remaining = scan(&root)?.report.findings;
    Ok(report)
}
