//! `tapedeck streams`: what a store holds.

use std::process::ExitCode;
use tapedeck::store::StoreUri;

use anyhow::Result;

/// List the streams of a store: key, first/last seq and time, counts by event type.
#[derive(clap::Args, Debug)]
pub struct Streams {
    /// Store URI: a file store directory (or file://DIR), or postgres://USER@HOST:PORT/DB.
    #[arg(long)]
    pub store: StoreUri,
    /// Only streams matching this glob (`*`, `?`).
    #[arg(long)]
    pub streams: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

impl Streams {
    pub fn run(self) -> Result<ExitCode> {
        let store = self.store.open()?;
        let pattern = self.streams.as_deref().unwrap_or("*");
        let streams: Vec<_> = store
            .streams()?
            .into_iter()
            .filter(|s| tapedeck::glob::glob_match(pattern, &s.key))
            .collect();
        if self.json {
            outln!("{}", serde_json::to_string_pretty(&streams)?);
            return Ok(ExitCode::SUCCESS);
        }
        for s in &streams {
            outln!(
                "{}  seq {}..{}  {} .. {}  {} events",
                s.key,
                s.first_seq,
                s.last_seq,
                tapedeck::time::format_ns(s.first_time),
                tapedeck::time::format_ns(s.last_time),
                s.events()
            );
            let c: Vec<String> = s.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
            outln!("    {}", c.join(", "));
        }
        Ok(ExitCode::SUCCESS)
    }
}
