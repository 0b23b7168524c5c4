//! `tapedeck copy`: streams from one store to another (file ⇄ PostgreSQL), losslessly.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use tapedeck::store::StoreUri;

use anyhow::Result;

use super::progress::Progress;

/// Copy streams (events and stored snapshots) between stores. Seqs, ids, tenancy, correlation
/// and payloads are kept. Copying into PostgreSQL again is a no-op (idempotency keys).
#[derive(clap::Args, Debug)]
pub struct Copy {
    /// Source store: a file store directory, or postgres://USER@HOST:PORT/DB.
    #[arg(long)]
    pub from: StoreUri,
    /// Destination store (a file store directory is created if missing; PostgreSQL must be
    /// migrated).
    #[arg(long)]
    pub to: StoreUri,
    /// Only streams matching this glob (`*`, `?`).
    #[arg(long, default_value = "*")]
    pub streams: String,
    /// Events per append (one transaction each in PostgreSQL).
    #[arg(long, default_value_t = 5000)]
    pub batch: usize,
    #[command(flatten)]
    pub lock: super::LockTimeout,
}

impl Copy {
    pub fn run(self) -> Result<ExitCode> {
        let from = self.from.open()?;
        let mut to = self.to.open_writable_with(self.lock.options()?)?;
        let mut streams = from.streams()?;
        streams.retain(|s| tapedeck::glob::glob_match(&self.streams, &s.key));
        let progress = Progress::start("copy", streams.iter().map(|s| s.events()).sum());
        let sum = tapedeck::store::copy(
            from.as_ref(),
            to.as_mut(),
            &streams,
            self.batch.max(1),
            &mut |_, n| progress.counter.store(n, Ordering::Relaxed),
        )?;
        drop(progress);
        outln!(
            "copied {} streams: {} events, {} snapshots",
            sum.streams,
            sum.events,
            sum.snapshots
        );
        Ok(ExitCode::SUCCESS)
    }
}
