//! `tapedeck fsck`: check a file store (log, index, snapshots, quarantine) and repair it by
//! quarantining.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use tapedeck::store::FileStore;
use tapedeck::store::fsck::{self, FsckReport};

/// Check a file store: every log line an envelope, seqs gapless per stream, torn tails; the
/// index (manifest, checksums, files readable); stored snapshots (parse, seq within their
/// stream, no stray temporary files); the quarantine's notes. Prints the findings; exit code
/// 1 when there are any. With --repair, moves what it found into quarantine/fsck-N/ (with a
/// NOTE.json saying where from), never deleting anything, then rebuilds the index.
#[derive(clap::Args, Debug)]
pub struct Fsck {
    /// The store directory.
    #[arg(long)]
    pub store: PathBuf,
    /// Repair: quarantine what is damaged, then rebuild the index (takes the writer lock).
    #[arg(long)]
    pub repair: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub lock: super::LockTimeout,
}

impl Fsck {
    pub fn run(self) -> Result<ExitCode> {
        let report = if self.repair {
            let mut store = FileStore::open_with(&self.store, self.lock.options()?)?;
            fsck::repair(&mut store)?
        } else {
            FileStore::open(&self.store)?;
            fsck::check(&self.store)?
        };
        if self.json {
            outln!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print(&report, self.repair);
        }
        let left = if self.repair {
            &report.remaining
        } else {
            &report.findings
        };
        Ok(if left.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

fn print(r: &FsckReport, repair: bool) {
    for f in &r.findings {
        outln!("{:?}: {f}", f.class);
    }
    for n in &r.notes {
        outln!("note: {n}");
    }
    for m in &r.repairs {
        outln!("repaired: {m}");
    }
    for f in &r.remaining {
        outln!("still there: {:?}: {f}", f.class);
    }
    let verdict = match (r.findings.len(), repair) {
        (0, _) => "clean".to_string(),
        (n, false) => format!("{n} finding(s); `--repair` quarantines them"),
        (n, true) if r.remaining.is_empty() => format!("{n} finding(s), all repaired"),
        (n, true) => format!("{n} finding(s), {} left after repair", r.remaining.len()),
    };
    outln!("{verdict}");
}
