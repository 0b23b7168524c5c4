//! `tapedeck import`: venue captures into a store.

use std::path::PathBuf;
use std::process::ExitCode;
use tapedeck::store::StoreUri;

use anyhow::Result;

use tapedeck::import::binance::{Importer, Market};

/// Import recorded captures into a store (a file store, or PostgreSQL).
#[derive(clap::Args, Debug)]
pub struct Import {
    #[command(subcommand)]
    pub source: Source,
}

#[derive(clap::Subcommand, Debug)]
pub enum Source {
    /// Binance combined-stream captures (`<local_ts_ns> <json>` lines, gzip or plain):
    /// depthUpdate, bookTicker, trade, and REST depth snapshots. Files of one stream are
    /// imported in the order given and the book continues across them. A stream the store
    /// holds already is continued: lines recorded at or before its last stored event are
    /// skipped (and counted), so re-running an import adds nothing. The book's sync state is
    /// kept in the store (`import:binance-<market>:<SYMBOL>`), so importing a capture in
    /// pieces, in as many runs, stores what one import of it would. Exit 1 on findings: gaps,
    /// quarantined lines (unparseable or not UTF-8), a truncated or corrupt gzip stream (its
    /// readable lines are imported).
    Binance(BinanceArgs),
}

#[derive(clap::Args, Debug)]
pub struct BinanceArgs {
    /// Capture files, oldest first.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Store URI: a file store directory (created if missing), or postgres://USER@HOST:PORT/DB
    /// (migrated). Unparseable lines are quarantined there.
    #[arg(long)]
    pub store: StoreUri,
    /// Market of the capture: spot or usdm [default: from the content; `pu` in diffs means
    /// USD-M futures].
    #[arg(long)]
    pub market: Option<Market>,
    /// Symbol, if the capture starts with a REST snapshot before any message naming it.
    #[arg(long)]
    pub symbol: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub lock: super::LockTimeout,
}

impl Import {
    pub fn run(self) -> Result<ExitCode> {
        match self.source {
            Source::Binance(a) => a.run(),
        }
    }
}

impl BinanceArgs {
    fn run(self) -> Result<ExitCode> {
        let mut store = self.store.open_writable_with(self.lock.options()?)?;
        let mut importer = Importer::new(store.as_mut(), self.market, self.symbol);
        for f in &self.files {
            eprintln!("importing {}", f.display());
            importer.import_file(f)?;
        }
        let s = importer.finish()?;
        if self.json {
            outln!("{}", serde_json::to_string_pretty(&s)?);
        } else {
            outln!("{} lines, {} events into {}", s.lines, s.events, self.store);
            for (stream, counts) in &s.by_stream {
                let c: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
                outln!("  {stream}: {}", c.join(", "));
            }
            outln!(
                "  snapshots {}, superseded diffs {}, unsynced diffs {}",
                s.snapshots,
                s.superseded_diffs,
                s.unsynced_diffs
            );
            if s.already_stored > 0 {
                outln!(
                    "  {} lines skipped: an earlier import into this store read them",
                    s.already_stored
                );
            }
            for g in &s.gaps {
                outln!(
                    "  GAP {} at {}:{}: expected {}, got {} (recorded as seq {})",
                    g.stream,
                    g.file,
                    g.line,
                    g.expected,
                    g.got,
                    g.seq
                );
            }
            if s.quarantined > 0 {
                outln!(
                    "  {} lines quarantined in {}",
                    s.quarantined,
                    s.quarantined_to.as_deref().unwrap_or("?")
                );
            }
            for t in &s.truncated {
                outln!(
                    "  TRUNCATED {}: {} after {} lines ({} bytes); the lines before it were imported",
                    t.file,
                    t.message,
                    t.lines,
                    t.bytes
                );
            }
        }
        // Gaps, quarantined lines and damaged input are findings, not errors.
        Ok(if s.is_clean() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}
