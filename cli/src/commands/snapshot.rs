//! `tapedeck snapshot`: projections under snapshot tests.

use std::path::PathBuf;
use std::process::ExitCode;
use tapedeck::store::StoreUri;

use anyhow::{Result, bail};

use tapedeck::runtime::{ModuleKind, Runtime, RuntimeConfig};
use tapedeck::snapshot::{Points, check_or_accept, take};

/// Snapshot-test a projector: its state per stream and point, as insta `.snap` files.
/// With --check (the default) a difference or a missing snapshot is written beside it as
/// `<name>.snap.new` (review with `cargo insta review`, or rerun with --accept) and the exit
/// code is 1; --accept writes the snapshots.
#[derive(clap::Args, Debug)]
pub struct Snapshot {
    /// Store URI: a file store directory (or file://DIR), or postgres://USER@HOST:PORT/DB.
    #[arg(long)]
    pub store: StoreUri,
    /// The projector module.
    #[arg(long)]
    pub projector: PathBuf,
    /// The projector's config JSON.
    #[arg(long, default_value = "")]
    pub config: String,
    /// Streams (glob with `*` and `?`).
    #[arg(long, default_value = "*")]
    pub streams: String,
    /// Snapshot at these seqs (comma-separated) [default: the end of each stream].
    #[arg(long, value_delimiter = ',', conflicts_with = "every")]
    pub at: Vec<u64>,
    /// Snapshot every N events of each stream, and at its end.
    #[arg(long)]
    pub every: Option<u64>,
    /// The directory of the .snap files.
    #[arg(long)]
    pub snapshots: PathBuf,
    /// Compare with the stored snapshots (the default).
    #[arg(long, conflicts_with = "accept")]
    pub check: bool,
    /// Write the snapshots as they are now.
    #[arg(long)]
    pub accept: bool,
    /// Replace values at matching paths with "[redacted]" (repeatable), e.g.
    /// '.orders.*.venue_order_id'.
    #[arg(long)]
    pub redact: Vec<String>,
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
}

impl Snapshot {
    pub fn run(self) -> Result<ExitCode> {
        let rt = Runtime::new(RuntimeConfig {
            max_instances: 32,
            ..RuntimeConfig::default()
        })?;
        let mut plugins = super::replay::plugins(
            &rt,
            std::slice::from_ref(&self.projector),
            ModuleKind::Projector,
        )?;
        plugins[0].config = self.config.clone();
        let store = self.store.open()?;
        let points = match (self.at.is_empty(), self.every) {
            (false, _) => Points::At(self.at.clone()),
            (true, Some(n)) => Points::Every(n),
            (true, None) => Points::End,
        };
        let taken = take(
            &rt,
            store.as_ref(),
            &plugins[0],
            &self.streams,
            &points,
            &self.redact,
            self.jobs,
        )?;
        if taken.is_empty() {
            bail!(
                "no stream of {} matches {:?}",
                store.describe(),
                self.streams
            );
        }
        let source = format!(
            "tapedeck snapshot --store {} --projector {}",
            self.store,
            self.projector.display()
        );
        let out = check_or_accept(
            &self.snapshots,
            &taken,
            &source,
            plugins[0].name(),
            self.accept,
        )?;
        if self.accept {
            println!(
                "accepted {} snapshot(s) in {}",
                out.accepted.len(),
                self.snapshots.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        for (name, unified, structural) in &out.changed {
            println!("{name}: state differs:");
            for d in structural {
                println!("  at {}: {} -> {}", d.path, d.expected, d.actual);
            }
            println!("{unified}");
        }
        for name in &out.pending {
            println!("{name}: new snapshot pending");
        }
        println!(
            "{} matched, {} changed, {} pending (in {})",
            out.matched.len(),
            out.changed.len(),
            out.pending.len(),
            self.snapshots.display()
        );
        if out.is_clean() {
            return Ok(ExitCode::SUCCESS);
        }
        println!("review the .snap.new files with `cargo insta review`, or rerun with --accept");
        Ok(ExitCode::from(1))
    }
}
