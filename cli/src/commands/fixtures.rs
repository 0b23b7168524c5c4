//! `tapedeck fixtures generate`: the seeded test and demo store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use sha2::{Digest, Sha256};

use tapedeck::store::{FileStore, FileStoreOptions};
use tapedeck_dev::fixtures::{FixtureSpec, generate};

/// Generate fixture stores.
#[derive(clap::Args, Debug)]
pub struct Fixtures {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Write a seeded store (market data + order lifecycles, with stored projector snapshots)
    /// and its metadata.json. Same arguments, same bytes.
    Generate(GenerateArgs),
}

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// The store directory to create (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[arg(long, default_value_t = 3)]
    pub instruments: u32,
    /// Events per stream (two streams per instrument).
    #[arg(long, default_value_t = 600)]
    pub events: u64,
    /// Store a snapshot of every projector after every this many events of a stream.
    #[arg(long, default_value_t = 200)]
    pub snapshot_every: u64,
}

impl Fixtures {
    pub fn run(self) -> Result<ExitCode> {
        match self.what {
            What::Generate(a) => a.run(),
        }
    }
}

impl GenerateArgs {
    fn run(self) -> Result<ExitCode> {
        if self.out.exists() {
            bail!(
                "{} exists; fixtures are generated into a new directory",
                self.out.display()
            );
        }
        let spec = FixtureSpec {
            seed: self.seed,
            instruments: self.instruments,
            events_per_stream: self.events,
            snapshot_every: self.snapshot_every,
        };
        let mut store = FileStore::create(&self.out, FileStoreOptions::default())?;
        generate(&mut store, &spec)?;
        // metadata.json: every file with its sha256 and size, and how to make it again.
        let mut files = Vec::new();
        let mut stack = vec![self.out.clone()];
        while let Some(dir) = stack.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(&dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for p in entries {
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name() == Some(tapedeck::store::LOCK_FILE.as_ref()) {
                    // The writer lock of the generating process: not part of the fixtures.
                    continue;
                } else {
                    let bytes = std::fs::read(&p)?;
                    let rel = p
                        .strip_prefix(&self.out)?
                        .to_string_lossy()
                        .replace('\\', "/");
                    let sha: String = Sha256::digest(&bytes)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    files.push(serde_json::json!({ "file": rel, "sha256": sha, "size_bytes": bytes.len() }));
                }
            }
        }
        files.sort_by(|a, b| a["file"].as_str().cmp(&b["file"].as_str()));
        let meta = serde_json::json!({
            "origin": format!(
                "generated: tapedeck fixtures generate --out DIR --seed {} --instruments {} --events {} --snapshot-every {}",
                spec.seed, spec.instruments, spec.events_per_stream, spec.snapshot_every
            ),
            "licence": "Apache-2.0 (this project)",
            "spec": spec,
            "files": files,
        });
        let mut text = serde_json::to_string_pretty(&meta)?;
        text.push('\n');
        std::fs::write(self.out.join("metadata.json"), text)?;
        outln!("{}", self.out.display());
        Ok(ExitCode::SUCCESS)
    }
}
