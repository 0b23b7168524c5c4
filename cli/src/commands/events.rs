//! `tapedeck events`: look at and add individual events of any store.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use tapedeck::store::StoreUri;

use anyhow::{Context, Result, bail};
use tapedeck::event::Envelope;
use tapedeck::replay::Point;
use tapedeck::store::EventQuery;

/// List, show, search and append events.
#[derive(clap::Args, Debug)]
pub struct Events {
    #[command(subcommand)]
    pub what: EventsCmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum EventsCmd {
    /// The events of one stream, from a seq (one line each, or JSON lines).
    List(ListArgs),
    /// One event, whole: by event id, or by --stream and --seq.
    Show(ShowArgs),
    /// Events across streams by type, event time, trace id or payload content.
    Search(SearchArgs),
    /// Append events from a JSON-lines file of envelopes (seqs continue each stream). The
    /// whole file is checked first: a bad line names its line and nothing is written.
    Append(AppendArgs),
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Store URI: a file store directory, or postgres://USER@HOST:PORT/DB.
    #[arg(long)]
    pub store: StoreUri,
    #[arg(long)]
    pub stream: String,
    /// Only these event types (repeat or comma-separate).
    #[arg(long = "type", value_delimiter = ',')]
    pub types: Vec<String>,
    #[arg(long, default_value_t = 1)]
    pub from_seq: u64,
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print each event as a JSON line.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    #[arg(long)]
    pub store: StoreUri,
    /// The event id (ULID).
    #[arg(conflicts_with_all = ["stream", "seq"], required_unless_present = "stream")]
    pub event_id: Option<String>,
    #[arg(long, requires = "seq")]
    pub stream: Option<String>,
    #[arg(long, requires = "stream")]
    pub seq: Option<u64>,
}

#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    #[arg(long)]
    pub store: StoreUri,
    /// Stream key glob (`*`, `?`).
    #[arg(long)]
    pub streams: Option<String>,
    #[arg(long = "type", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Event time from: t:<ns> or a UTC time like 2024-08-08T23:55:00Z.
    #[arg(long)]
    pub from: Option<String>,
    /// Event time to (inclusive), same forms.
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long)]
    pub trace_id: Option<String>,
    /// The payload contains this JSON, e.g. '{"side":"buy"}' (the GIN index in PostgreSQL).
    #[arg(long)]
    pub contains: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct AppendArgs {
    #[arg(long)]
    pub store: StoreUri,
    /// JSON lines, one envelope each (the file store's format).
    #[arg(long)]
    pub file: PathBuf,
    #[command(flatten)]
    pub lock: super::LockTimeout,
}

impl Events {
    pub fn run(self) -> Result<ExitCode> {
        match self.what {
            EventsCmd::List(a) => {
                let q = EventQuery {
                    stream: Some(a.stream),
                    event_types: a.types,
                    from_seq: Some(a.from_seq),
                    limit: a.limit,
                    ..EventQuery::default()
                };
                print_matches(&a.store, &q, a.json)
            }
            EventsCmd::Show(a) => {
                let store = a.store.open()?;
                let q = match (&a.event_id, &a.stream, a.seq) {
                    (Some(id), _, _) => EventQuery {
                        event_id: Some(id.clone()),
                        limit: 1,
                        ..EventQuery::default()
                    },
                    (None, Some(stream), Some(seq)) => EventQuery {
                        stream: Some(stream.clone()),
                        from_seq: Some(seq),
                        limit: 1,
                        ..EventQuery::default()
                    },
                    _ => bail!("give an event id, or --stream and --seq"),
                };
                let mut found = None;
                store.query(&q, &mut |e| {
                    found = Some(e);
                    Ok(())
                })?;
                match found.filter(|e| a.seq.is_none_or(|s| e.seq == s)) {
                    Some(e) => {
                        outln!("{}", serde_json::to_string_pretty(&e)?);
                        Ok(ExitCode::SUCCESS)
                    }
                    None => {
                        eprintln!("no such event in {}", store.describe());
                        Ok(ExitCode::from(1))
                    }
                }
            }
            EventsCmd::Search(a) => {
                let time = |s: &Option<String>, what: &str| -> Result<Option<i64>> {
                    s.as_deref()
                        .map(|s| match s.parse::<Point>() {
                            Ok(Point::Time(t)) => Ok(t),
                            _ => bail!(
                                "--{what} {s:?}: want t:<ns> or a time like 2024-08-08T23:55:00Z"
                            ),
                        })
                        .transpose()
                };
                let q = EventQuery {
                    stream: a.streams,
                    event_types: a.types,
                    from_time: time(&a.from, "from")?,
                    to_time: time(&a.to, "to")?,
                    trace_id: a.trace_id,
                    contains: a
                        .contains
                        .as_deref()
                        .map(serde_json::from_str)
                        .transpose()
                        .context("--contains: not JSON")?,
                    limit: a.limit,
                    ..EventQuery::default()
                };
                print_matches(&a.store, &q, a.json)
            }
            EventsCmd::Append(a) => append(&a),
        }
    }
}

fn print_matches(uri: &StoreUri, q: &EventQuery, json: bool) -> Result<ExitCode> {
    let store = uri.open()?;
    let mut n = 0u64;
    store.query(q, &mut |e| {
        n += 1;
        if json {
            outln!(
                "{}",
                serde_json::to_string(&e).expect("envelopes serialize")
            );
        } else {
            outln!(
                "{}  {}#{}  {}  {}  {}",
                tapedeck::time::format_ns(e.occurred_at),
                e.stream_key,
                e.seq,
                e.body.event_type(),
                e.instrument.as_deref().unwrap_or("-"),
                e.event_id
            );
        }
        Ok(())
    })?;
    if !json {
        eprintln!("{n} events");
    }
    Ok(ExitCode::SUCCESS)
}

fn append(a: &AppendArgs) -> Result<ExitCode> {
    let f = std::fs::File::open(&a.file).with_context(|| format!("{}", a.file.display()))?;
    let mut events = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}", a.file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let e: Envelope = serde_json::from_str(&line).with_context(|| {
            format!(
                "{}:{}: not an event envelope; nothing was written",
                a.file.display(),
                i + 1
            )
        })?;
        events.push(e);
    }
    let mut store = a.store.open_writable_with(a.lock.options()?)?;
    let done = store.append(&events)?;
    outln!(
        "{} events stored, {} already stored (idempotent duplicates)",
        done.appended(),
        done.duplicates()
    );
    Ok(ExitCode::SUCCESS)
}
