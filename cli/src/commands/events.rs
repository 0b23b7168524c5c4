//! `tapedeck events`: look at and add individual events of any store.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use tapedeck::store::StoreUri;

use anyhow::{Context, Result, bail};
use tapedeck::event::Envelope;
use tapedeck::replay::Point;
use tapedeck::store::EventQuery;

use super::progress::Progress;

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

/// Events per `append` call of `events append`: what bounds its memory.
const APPEND_BATCH: usize = 8192;

/// Every line of `file` that is not blank, parsed, with its line number; `Err` names the line.
fn envelopes(file: &Path) -> Result<impl Iterator<Item = Result<(usize, Envelope)>> + '_> {
    let f = std::fs::File::open(file).with_context(|| format!("{}", file.display()))?;
    let lines = std::io::BufReader::with_capacity(1 << 20, f).lines();
    Ok(lines.enumerate().filter_map(move |(i, line)| {
        let parsed = line
            .with_context(|| format!("{}:{}", file.display(), i + 1))
            .and_then(|line| {
                if line.trim().is_empty() {
                    return Ok(None);
                }
                serde_json::from_str(&line).map(Some).with_context(|| {
                    format!(
                        "{}:{}: not an event envelope; nothing was written",
                        file.display(),
                        i + 1
                    )
                })
            });
        parsed.transpose().map(|r| r.map(|e| (i + 1, e)))
    }))
}

/// Streams the file twice, holding at most [`APPEND_BATCH`] events: first every line is checked
/// (an envelope; each stream's seqs consecutive in the file and continuing the store), then it
/// is appended batch by batch. A bad line or a gap writes nothing. (A file store is locked for
/// the whole command; on PostgreSQL another writer of the same streams between the check and
/// the appends can still make a later batch fail.)
fn append(a: &AppendArgs) -> Result<ExitCode> {
    let file = a.file.display();
    // Each stream's (first seq, last seq, line of its first event) in the file.
    let mut spans: BTreeMap<String, (u64, u64, usize)> = BTreeMap::new();
    let mut total = 0u64;
    for item in envelopes(&a.file)? {
        let (line, e) = item?;
        total += 1;
        match spans.get_mut(&*e.stream_key) {
            Some((_, last, _)) if e.seq != *last + 1 => bail!(
                "{file}:{line}: stream {} seq {} follows seq {last} in this file (want {}); nothing was written",
                e.stream_key,
                e.seq,
                *last + 1
            ),
            Some((_, last, _)) => *last = e.seq,
            None => {
                spans.insert(e.stream_key.to_string(), (e.seq, e.seq, line));
            }
        }
    }
    let mut store = a.store.open_writable_with(a.lock.options()?)?;
    let stored: BTreeMap<String, u64> = store
        .streams()?
        .into_iter()
        .map(|s| (s.key, s.last_seq))
        .collect();
    for (stream, (first, _, line)) in &spans {
        let end = stored.get(stream).copied().unwrap_or(0);
        if *first > end + 1 {
            bail!(
                "{file}:{line}: stream {stream} starts at seq {first} in this file, but {} ends at seq {end} (a gap); nothing was written",
                store.describe()
            );
        }
    }
    let progress = Progress::start("append", total);
    let (mut appended, mut duplicates) = (0, 0);
    let mut batch = Vec::with_capacity(APPEND_BATCH);
    let mut items = envelopes(&a.file)?;
    loop {
        let next = items.next().transpose()?;
        if let Some((_, e)) = next {
            batch.push(e);
            if batch.len() < APPEND_BATCH {
                continue;
            }
        }
        if batch.is_empty() {
            break;
        }
        let done = store.append(&batch)?;
        appended += done.appended();
        duplicates += done.duplicates();
        progress
            .counter
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        batch.clear();
    }
    drop(progress);
    outln!("{appended} events stored, {duplicates} already stored (idempotent duplicates)");
    Ok(ExitCode::SUCCESS)
}
