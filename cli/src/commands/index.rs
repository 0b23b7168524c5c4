//! `tapedeck index`: the file store's derived columnar index.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use tapedeck::store::{FileStore, IndexState};

/// Manage a file store's Parquet index (derived from the log; replay reads it when it is up
/// to date, and the log otherwise).
#[derive(clap::Args, Debug)]
pub struct Index {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Rebuild the index from the log.
    Rebuild(RebuildArgs),
    /// Say whether the index matches the log.
    Status(StatusArgs),
}

#[derive(clap::Args, Debug)]
pub struct RebuildArgs {
    /// The store directory.
    #[arg(long)]
    pub store: PathBuf,
    /// Rebuild only days on or after this one (YYYY-MM-DD); other indexed days are kept.
    #[arg(long)]
    pub since: Option<String>,
    #[command(flatten)]
    pub lock: super::LockTimeout,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[arg(long)]
    pub store: PathBuf,
}

impl Index {
    pub fn run(self) -> Result<ExitCode> {
        match self.what {
            What::Rebuild(a) => {
                if let Some(s) = &a.since
                    && !(s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-')
                {
                    anyhow::bail!("--since wants a day like 2024-08-08, got {s:?}");
                }
                let mut store = FileStore::open_with(&a.store, a.lock.options()?)?;
                let t = std::time::Instant::now();
                let s = store.rebuild_index(a.since.as_deref())?;
                outln!(
                    "indexed {} rows in {} day(s) in {:.2}s",
                    s.rows,
                    s.days.len(),
                    t.elapsed().as_secs_f64()
                );
                Ok(ExitCode::SUCCESS)
            }
            What::Status(a) => {
                let store = FileStore::open(&a.store)?;
                let rebuild = format!("`tapedeck index rebuild --store {}`", a.store.display());
                match store.index_state()? {
                    IndexState::Fresh(m) => {
                        outln!(
                            "up to date: {} day(s), {} rows",
                            m.days.len(),
                            m.days.values().map(|d| d.rows).sum::<u64>()
                        );
                        return Ok(ExitCode::SUCCESS);
                    }
                    IndexState::Missing => {
                        outln!("missing: replay reads the log; {rebuild} builds it")
                    }
                    IndexState::Stale => {
                        outln!("stale: replay reads the log; {rebuild} rebuilds it")
                    }
                    IndexState::Unusable(why) => {
                        outln!("unusable ({why}): replay reads the log; {rebuild} rebuilds it")
                    }
                }
                Ok(ExitCode::from(1))
            }
        }
    }
}
