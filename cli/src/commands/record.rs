//! `tapedeck record`: the recorder service (see `tapedeck::recorder`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use tapedeck::recorder::config::SinkConfig;
use tapedeck::recorder::{RecordConfig, Recorder};

/// Record live events: NDJSON envelopes over TCP or a Unix socket, `POST /events` over
/// HTTP, and Binance market data ([[inputs.binance]] feeds), each acknowledged once it is
/// durable in the write-ahead log, then stored by every
/// sink (file store, PostgreSQL, ClickHouse) with the seq the recorder gave it. Runs until
/// SIGINT/SIGTERM. Settings come from --config (TOML; see README "Recording live events"),
/// flags override them, and store URIs may name environment variables as `${NAME}` for
/// secrets. Prints one line saying where it listens, then logs to stderr.
#[derive(clap::Args, Debug)]
pub struct Record {
    /// The settings file (record.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The WAL directory [config: wal.dir; default: wal].
    #[arg(long)]
    pub wal: Option<PathBuf>,
    /// Listen for NDJSON over TCP on ADDR (port 0: any free port) [config: inputs.tcp].
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<SocketAddr>,
    /// Listen for NDJSON on a Unix socket [config: inputs.unix].
    #[arg(long, value_name = "PATH")]
    pub unix: Option<PathBuf>,
    /// Serve POST /events, GET /metrics, GET /healthz on ADDR [config: inputs.http].
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// A store to write to (repeatable; replaces the config's [[sinks]]).
    #[arg(long = "sink", value_name = "URI")]
    pub sinks: Vec<String>,
    /// Drop market data under overload (counted, marked by book_gap events) instead of
    /// holding senders back [config: market_data.lossy].
    #[arg(long)]
    pub lossy_market_data: bool,
    /// Log lines as JSON objects instead of text.
    #[arg(long)]
    pub log_json: bool,
}

impl Record {
    pub fn run(self) -> Result<ExitCode> {
        let mut cfg = match &self.config {
            Some(p) => RecordConfig::load(p)?,
            None => RecordConfig::default(),
        };
        if let Some(d) = self.wal {
            cfg.wal.dir = d;
        }
        if self.tcp.is_some() {
            cfg.inputs.tcp = self.tcp;
        }
        if self.unix.is_some() {
            cfg.inputs.unix = self.unix;
        }
        if self.http.is_some() {
            cfg.inputs.http = self.http;
        }
        if !self.sinks.is_empty() {
            cfg.sinks = self
                .sinks
                .into_iter()
                .map(|store| SinkConfig {
                    store,
                    ..Default::default()
                })
                .collect();
        }
        cfg.market_data.lossy |= self.lossy_market_data;
        let cfg = cfg
            .finish()
            .map_err(anyhow::Error::msg)
            .with_context(|| match &self.config {
                Some(p) => format!("{}", p.display()),
                None => "the recorder's settings".into(),
            })?;
        init_logs(self.log_json);
        let feeds: Vec<String> = cfg
            .inputs
            .binance
            .iter()
            .map(|b| format!("binance {} ({})", b.ws_url, b.symbols.join(" ")))
            .collect();
        let running = Recorder::new(cfg).start()?;
        tracing::info!(recovery = %running.recovery, "recovered");
        let mut at = Vec::new();
        if let Some(a) = running.tcp {
            at.push(format!("tcp {a}"));
        }
        if let Some(p) = &running.unix {
            at.push(format!("unix {}", p.display()));
        }
        if let Some(a) = running.http {
            at.push(format!("http {a}"));
        }
        at.extend(feeds);
        outln!("recording: {}", at.join(", "));
        running.wait()?;
        tracing::info!("stopping: acknowledging what was taken, storing what the sinks can");
        running.stop()?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Structured logs on stderr (text, or JSON objects).
pub(crate) fn init_logs(json: bool) {
    let filter = tracing_subscriber::filter::LevelFilter::INFO;
    let b = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(filter);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}
