//! `tapedeck retention apply`: drops the day partitions of a ClickHouse store that are past
//! their table's retention (the library's per-table policy, seed 004's defaults). A dry run
//! unless `--execute`.

use std::process::ExitCode;

use anyhow::Result;
use tapedeck::store::StoreUri;
use tapedeck::store::clickhouse::{ChStore, RetentionPolicy, apply_retention};

/// Retention by dropping expired day partitions (ClickHouse 18.16 has no TTL).
#[derive(clap::Args, Debug)]
pub struct Retention {
    #[command(subcommand)]
    pub what: RetentionCmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum RetentionCmd {
    /// List the partitions past retention; drop them with --execute.
    Apply(ApplyArgs),
}

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// clickhouse://[USER[:PASSWORD]@]HOST:PORT/DB
    #[arg(long)]
    pub store: StoreUri,
    /// Drop them (without it: only print what would be dropped).
    #[arg(long)]
    pub execute: bool,
    /// Measure retention from this UTC day (YYYY-MM-DD) [default: today].
    #[arg(long)]
    pub as_of: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

impl Retention {
    pub fn run(self) -> Result<ExitCode> {
        let RetentionCmd::Apply(a) = self.what;
        let store = ChStore::connect(a.store.clickhouse("retention apply")?)?;
        let as_of = a.as_of.unwrap_or_else(today);
        let r = apply_retention(&store, RetentionPolicy::DEFAULTS, &as_of, a.execute)?;
        if a.json {
            outln!("{}", serde_json::to_string_pretty(&r)?);
            return Ok(ExitCode::SUCCESS);
        }
        for p in &r.policies {
            match p.days {
                Some(d) => outln!("{:<22} keeps {d} days", p.table),
                None => outln!("{:<22} keeps everything", p.table),
            }
        }
        let verb = if r.executed { "dropped" } else { "would drop" };
        for x in &r.expired {
            outln!(
                "{verb} {}.{} ({} rows, {} bytes)",
                x.table,
                x.partition,
                x.rows,
                x.bytes
            );
        }
        if r.expired.is_empty() {
            outln!("nothing past retention as of {as_of}");
        } else if !r.executed {
            outln!(
                "{} partitions past retention as of {as_of}; run again with --execute to drop them",
                r.expired.len()
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Today's UTC day: retention is measured from the wall clock (nothing here reaches a report).
fn today() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    tapedeck::time::day_of(ns)
}
