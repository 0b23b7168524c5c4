//! `tapedeck migrate` (PostgreSQL and ClickHouse schemas) and `tapedeck partitions`: the
//! PostgreSQL store's monthly event_log partitions.

use std::process::ExitCode;
use tapedeck::store::StoreUri;

use anyhow::Result;
use tapedeck::store::PgStore;

/// Create or update a database store's schema (migrations/ embedded in this binary;
/// forward-only).
#[derive(clap::Args, Debug)]
pub struct Migrate {
    /// postgres://USER[:PASSWORD]@HOST:PORT/DB or clickhouse://[USER[:PASSWORD]@]HOST:PORT/DB
    #[arg(long)]
    pub store: StoreUri,
}

impl Migrate {
    pub fn run(self) -> Result<ExitCode> {
        let applied = self.store.migrate()?;
        if applied.is_empty() {
            outln!("schema up to date");
        } else {
            let v: Vec<String> = applied.iter().map(|v| format!("{v:04}")).collect();
            outln!("applied migrations {}", v.join(", "));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Monthly event_log partitions: create ahead of time, check coverage (for monitoring).
#[derive(clap::Args, Debug)]
pub struct Partitions {
    #[command(subcommand)]
    pub what: PartitionsCmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum PartitionsCmd {
    /// Create the partitions of this month and the next N (idempotent; run it monthly).
    Create(PartitionArgs),
    /// Report this month and the next N; exit 1 when any has no partition.
    Check(PartitionArgs),
}

#[derive(clap::Args, Debug)]
pub struct PartitionArgs {
    /// postgres://USER[:PASSWORD]@HOST:PORT/DB
    #[arg(long)]
    pub store: StoreUri,
    #[arg(long, default_value_t = 3)]
    pub months_ahead: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

impl Partitions {
    pub fn run(self) -> Result<ExitCode> {
        match self.what {
            PartitionsCmd::Create(a) => {
                let names = PgStore::connect(a.store.postgres("partitions create")?)?
                    .create_partitions(a.months_ahead)?;
                if a.json {
                    outln!("{}", serde_json::to_string_pretty(&names)?);
                } else {
                    outln!("partitions present: {}", names.join(", "));
                }
                Ok(ExitCode::SUCCESS)
            }
            PartitionsCmd::Check(a) => {
                let months = PgStore::connect(a.store.postgres("partitions check")?)?
                    .partition_coverage(a.months_ahead)?;
                let missing = months.iter().filter(|m| !m.present).count();
                if a.json {
                    outln!("{}", serde_json::to_string_pretty(&months)?);
                } else {
                    for m in &months {
                        let state = if m.present { "ok" } else { "MISSING" };
                        outln!("{}  {}  {state}", &m.month[..7], m.partition);
                    }
                    if missing > 0 {
                        outln!(
                            "{missing} of {} months have no partition; run `tapedeck partitions create --store URI --months-ahead {}`",
                            months.len(),
                            a.months_ahead
                        );
                    }
                }
                Ok(ExitCode::from(u8::from(missing > 0)))
            }
        }
    }
}
