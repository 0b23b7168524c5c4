//! `tapedeck snapshot`: projections under snapshot tests, and `tapedeck snapshot
//! migrate-names`: `.snap` files named by the old rule renamed to the current one.

use std::path::PathBuf;
use std::process::ExitCode;
use tapedeck::store::StoreUri;

use anyhow::{Context, Result, bail};

use tapedeck::runtime::{ModuleKind, Runtime, RuntimeConfig};
use tapedeck::snapshot::{Points, check_or_accept, rename_legacy, take_shard};

/// Snapshot-test a projector: its state per stream and point, as insta `.snap` files.
/// With --check (the default) a difference or a missing snapshot is written beside it as
/// `<name>.snap.new` (review with `cargo insta review`, or rerun with --accept) and the exit
/// code is 1; --accept writes the snapshots. A snapshot still under its old name (before
/// stream keys were `%XX`-escaped) is compared as it is and reported; `tapedeck snapshot
/// migrate-names` renames such files.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Snapshot {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Store URI: a file store directory (or file://DIR), or postgres://USER@HOST:PORT/DB.
    #[arg(long, required = true)]
    pub store: Option<StoreUri>,
    /// The projector module.
    #[arg(long, required = true)]
    pub projector: Option<PathBuf>,
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
    #[arg(long, required = true)]
    pub snapshots: Option<PathBuf>,
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
    /// Take and check only one shard's streams: `I/N` or `env` (as for `replay`). Each
    /// stream's .snap files are its own, so the shards need no merge.
    #[arg(long, value_name = "I/N|env")]
    pub shard: Option<tapedeck::shard::Shard>,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    MigrateNames(MigrateNames),
}

/// Rename .snap files named by the old rule to the current names.
///
/// The old rule turned every character outside [A-Za-z0-9_-] of a stream key into `-`; the
/// current one escapes it (`md:sim:SYM1` is `md%3Asim%3ASYM1`), so two streams never share a
/// file. This renames the .snap and .snap.new files of a directory. The old rule lost
/// information, so each file is matched against the streams of --store: a file exactly one
/// stream maps to is renamed; one that several streams map to, or whose new name exists, is
/// left alone and reported (exit code 1).
#[derive(clap::Args, Debug)]
pub struct MigrateNames {
    /// The directory of the .snap files.
    #[arg(long)]
    pub snapshots: PathBuf,
    /// The store the snapshots were taken of: its stream keys say which stream an old name
    /// stands for.
    #[arg(long)]
    pub store: StoreUri,
    /// Only this projector's files (its module name, as file names start with it).
    #[arg(long)]
    pub projector: Option<String>,
    /// Say what would be renamed, and rename nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl MigrateNames {
    pub fn run(self) -> Result<ExitCode> {
        let store = self.store.open()?;
        let streams: Vec<String> = store.streams()?.into_iter().map(|s| s.key).collect();
        let dir = self.snapshots.display();
        let out = rename_legacy(
            &self.snapshots,
            &streams,
            self.projector.as_deref(),
            self.dry_run,
        )
        .with_context(|| format!("renaming the snapshots in {dir}"))?;
        let verb = if self.dry_run {
            "would rename"
        } else {
            "renamed"
        };
        for (old, new) in &out.renamed {
            outln!("{verb} {old} -> {new}");
        }
        for (file, keys) in &out.ambiguous {
            outln!(
                "left {file}: it is the old name of {} streams ({}); its `expression` line says which, rename it by hand",
                keys.len(),
                keys.join(", ")
            );
        }
        for (old, new) in &out.blocked {
            outln!("left {old}: {new} exists");
        }
        outln!(
            "{} {verb}, {} already named, {} left, {} of no stream of {} (in {dir})",
            out.renamed.len(),
            out.current,
            out.ambiguous.len() + out.blocked.len(),
            out.unknown.len(),
            store.describe(),
        );
        Ok(if out.is_clean() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

impl Snapshot {
    pub fn run(self) -> Result<ExitCode> {
        if let Some(Action::MigrateNames(m)) = self.action {
            return m.run();
        }
        // clap requires these without a subcommand.
        let (Some(store_uri), Some(projector), Some(snapshots)) =
            (&self.store, &self.projector, &self.snapshots)
        else {
            bail!("--store, --projector and --snapshots are required");
        };
        let rt = Runtime::new(RuntimeConfig {
            max_instances: 32,
            ..RuntimeConfig::default()
        })?;
        let mut plugins =
            super::replay::plugins(&rt, std::slice::from_ref(projector), ModuleKind::Projector)?;
        plugins[0].config = self.config.clone();
        let store = store_uri.open()?;
        let points = match (self.at.is_empty(), self.every) {
            (false, _) => Points::At(self.at.clone()),
            (true, Some(n)) => Points::Every(n),
            (true, None) => Points::End,
        };
        let taken = take_shard(
            &rt,
            store.as_ref(),
            &plugins[0],
            &self.streams,
            &points,
            &self.redact,
            self.jobs,
            self.shard,
        )?;
        if taken.is_empty() && self.shard.is_none() {
            bail!(
                "no stream of {} matches {:?}",
                store.describe(),
                self.streams
            );
        }
        let source = format!(
            "tapedeck snapshot --store {} --projector {}",
            store_uri,
            projector.display()
        );
        let out = check_or_accept(snapshots, &taken, &source, plugins[0].name(), self.accept)?;
        for (old, new) in &out.old_names {
            if self.accept {
                outln!("{new}.snap replaces {old}.snap (its old name)");
            } else {
                outln!(
                    "{old}.snap: under its old name (now {new}.snap); `tapedeck snapshot migrate-names --snapshots {} --store {store_uri}` renames it",
                    snapshots.display()
                );
            }
        }
        if self.accept {
            outln!(
                "accepted {} snapshot(s) in {}",
                out.accepted.len(),
                snapshots.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        for (name, unified, structural) in &out.changed {
            outln!("{name}: state differs:");
            for d in structural {
                outln!("  at {}: {} -> {}", d.path, d.expected, d.actual);
            }
            outln!("{unified}");
        }
        for name in &out.pending {
            outln!("{name}: new snapshot pending");
        }
        outln!(
            "{} matched, {} changed, {} pending (in {})",
            out.matched.len(),
            out.changed.len(),
            out.pending.len(),
            snapshots.display()
        );
        if out.is_clean() {
            return Ok(ExitCode::SUCCESS);
        }
        outln!("review the .snap.new files with `cargo insta review`, or rerun with --accept");
        Ok(ExitCode::from(1))
    }
}
