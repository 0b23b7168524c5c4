//! `tapedeck feed serve`: the feed simulator (see `tapedeck::feed`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use tapedeck::feed::{FeedOptions, FeedServer};

/// Exchange feeds for tests and demos.
#[derive(clap::Args, Debug)]
pub struct Feed {
    #[command(subcommand)]
    pub command: FeedCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum FeedCommand {
    /// Serve a recorded Binance capture (as `import binance` reads it) the way the exchange
    /// serves it: the combined stream over WebSocket at /stream?streams=..., the REST depth
    /// snapshot at /api/v3/depth (and /fapi/v1/depth) as of the last message sent, and
    /// GET /sim/status. The capture plays once, on one clock for all connections, from the
    /// first WebSocket connection on; a client that reconnects has missed what was sent
    /// meanwhile. Point a recorder's [[inputs.binance]] ws_url at ws://ADDR/stream and
    /// rest_url at http://ADDR. Runs until SIGINT/SIGTERM.
    Serve(Serve),
}

#[derive(clap::Args, Debug)]
pub struct Serve {
    /// The capture (`<local_ts_ns> <json>` lines, gzip or plain).
    #[arg(long)]
    pub capture: PathBuf,
    /// Where to listen (port 0: any free port; the line printed says which).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9443")]
    pub listen: SocketAddr,
    /// Capture seconds per second (10: ten times as fast as recorded); 0 sends as fast as
    /// connections take it.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Drop every WebSocket connection after each N messages sent (a server-side disconnect,
    /// no close frame).
    #[arg(long, value_name = "N")]
    pub disconnect_every: Option<u64>,
    /// Serve wss:// and https:// with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The symbol of REST snapshots that come before any message naming it.
    #[arg(long)]
    pub symbol: Option<String>,
    /// Serve depth snapshots as of this many applied diffs before the last message sent (a
    /// snapshot that trails the stream, as the exchange's can).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub snapshot_lag: usize,
    /// Ping every WebSocket connection each this many milliseconds (Binance: 20,000), and
    /// close one that leaves a ping unanswered for --pong-timeout-ms.
    #[arg(long, value_name = "MS")]
    pub ping_every_ms: Option<u64>,
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    pub pong_timeout_ms: u64,
    /// Allow N REST requests per --rest-window-ms: past it a request gets HTTP 429 with a
    /// Retry-After, and one sent before that wait is over gets 418.
    #[arg(long, value_name = "N")]
    pub rest_limit: Option<u32>,
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    pub rest_window_ms: u64,
    /// Log lines as JSON objects instead of text.
    #[arg(long)]
    pub log_json: bool,
}

impl Feed {
    pub fn run(self) -> Result<ExitCode> {
        match self.command {
            FeedCommand::Serve(s) => s.run(),
        }
    }
}

impl Serve {
    fn run(self) -> Result<ExitCode> {
        super::record::init_logs(self.log_json);
        let server = FeedServer::start(FeedOptions {
            capture: self.capture.clone(),
            listen: self.listen,
            speed: self.speed,
            disconnect_every: self.disconnect_every,
            tls: self.tls_cert.zip(self.tls_key),
            symbol: self.symbol,
            snapshot_lag: self.snapshot_lag,
            ping_every: self.ping_every_ms.map(Duration::from_millis),
            pong_timeout: Duration::from_millis(self.pong_timeout_ms),
            rest_limit: self.rest_limit,
            rest_window: Duration::from_millis(self.rest_window_ms.max(1)),
        })?;
        let (ws, http) = if server.tls {
            ("wss", "https")
        } else {
            ("ws", "http")
        };
        outln!(
            "serving {}: {ws}://{addr}/stream, {http}://{addr}",
            self.capture.display(),
            addr = server.addr
        );
        server.wait()?;
        Ok(ExitCode::SUCCESS)
    }
}
