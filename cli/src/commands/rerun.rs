//! `tapedeck rerun`: a run directory's card run again, and the two directories compared.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use tapedeck::rerun::{first_difference, read_card, rerun};

/// Run the run card of RUN_DIR (`config.json`: modules by path and hash, store, streams,
/// range, venue, rules) again into a new directory, and say whether the new run directory is
/// identical to the old apart from wall-clock fields, naming the first differing file and
/// field otherwise (a stream whose data changed shows in `config.json`'s `data`).
/// Exit code 0 identical, 1 different, 2 error (a module changed, the store is gone).
#[derive(clap::Args, Debug)]
pub struct Rerun {
    /// The run directory to run again.
    pub run_dir: PathBuf,
    /// Where the new run directory goes [default: RUN_DIR.rerun]; replaced if it exists.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Streams replayed in parallel (results do not depend on it).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
}

impl Rerun {
    pub fn run(self) -> Result<ExitCode> {
        let card = read_card(&self.run_dir)?;
        let out = self.out.clone().unwrap_or_else(|| {
            let mut s = self.run_dir.clone().into_os_string();
            s.push(".rerun");
            PathBuf::from(s)
        });
        if out.exists() {
            anyhow::ensure!(
                out.join("config.json").is_file(),
                "{} exists and is not a run directory: give another --out",
                out.display()
            );
            std::fs::remove_dir_all(&out)
                .with_context(|| format!("replacing {}", out.display()))?;
        }
        let kind = rerun(&card, &out, self.jobs)
            .with_context(|| format!("rerunning {}", self.run_dir.display()))?;
        match first_difference(&self.run_dir, &out)? {
            None => {
                outln!(
                    "identical: {kind:?} run in {} (apart from timing)",
                    out.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            Some(d) => {
                outln!("different: {d}");
                outln!("new run: {}", out.display());
                Ok(ExitCode::from(1))
            }
        }
    }
}
