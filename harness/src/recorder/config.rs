//! `record.toml`: the recorder's settings. Every field has a default, so an empty file (or
//! none) and a few flags make a working recorder. Store URIs may name environment variables
//! (`postgres://rec:${PGPASSWORD}@db/ticks`), so secrets stay out of the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::import::binance::Market;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordConfig {
    pub wal: WalConfig,
    pub inputs: InputsConfig,
    /// Where events go once durable in the WAL; at least one.
    pub sinks: Vec<SinkConfig>,
    pub market_data: MarketDataConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalConfig {
    pub dir: PathBuf,
    /// A segment is closed and a new one started past this size.
    pub segment_mb: u64,
    /// Group commit: one fsync covers what arrived while the last one ran, and waits up to
    /// `sync_delay_us` for more unless `sync_bytes` are already waiting.
    pub sync_bytes: usize,
    pub sync_delay_us: u64,
    /// Overload: when the WAL holds more events than this not yet stored by every sink,
    /// critical inputs wait (backpressure) and lossy market data is dropped.
    pub max_backlog_events: u64,
    /// Events remembered for deduplicating resends (an event resent with an `event_id` or
    /// `idempotency_key` already recorded is acknowledged with its first seq, not recorded
    /// twice); about 150 bytes of memory each. The WAL keeps at least this many recent
    /// events, so the window survives a restart.
    pub dedup_window: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputsConfig {
    /// NDJSON envelopes over TCP: one acknowledgement line per input line.
    pub tcp: Option<SocketAddr>,
    /// The same protocol over a Unix socket.
    pub unix: Option<PathBuf>,
    /// HTTP: `POST /events`, `GET /metrics`, `GET /healthz`.
    pub http: Option<SocketAddr>,
    /// A longer line (or HTTP body) is refused with a reason.
    pub max_line_bytes: usize,
    /// Connections beyond this are refused at accept.
    pub max_connections: usize,
    /// A connection that sends nothing (or not a whole line) for this long is closed.
    pub idle_timeout_s: u64,
    /// Binance combined-stream clients (`[[inputs.binance]]`), one connection each.
    pub binance: Vec<BinanceConfig>,
}

/// A Binance market-data feed: one combined-stream connection for `symbols` × `channels`,
/// plus a REST depth snapshot per symbol. The URLs default to the exchange's for the market;
/// point both at `tapedeck feed serve` to replay a capture instead.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BinanceConfig {
    /// The combined-stream endpoint (`wss://` or `ws://`, without the query) [default:
    /// `wss://stream.binance.com:9443/stream`, for usdm `wss://fstream.binance.com/stream`].
    pub ws_url: String,
    /// The REST API root (`https://` or `http://`); `/api/v3/depth` (spot) or
    /// `/fapi/v1/depth` (usdm) is appended [default: `https://api.binance.com`, for usdm
    /// `https://fapi.binance.com`].
    pub rest_url: String,
    /// `spot` or `usdm`: names the streams (`md:binance-spot:BTCUSDT`) and the REST path.
    pub market: Market,
    pub symbols: Vec<String>,
    /// Stream channels per symbol: [`CHANNELS`], at most one depth channel.
    pub channels: Vec<String>,
    /// Levels per side of the REST snapshot (spot: up to 5000; usdm: 5, 10, 20, 50, 100, 500
    /// or 1000).
    pub snapshot_limit: usize,
    /// Extra trusted certificates (PEM), beside the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// Reconnect backoff: from this, doubling ...
    pub reconnect_min_ms: u64,
    /// ... up to this.
    pub reconnect_max_ms: u64,
    /// A connection that brings nothing for this long is a break (reconnect).
    pub stale_after_s: u64,
}

/// The channels the client maps (what `import binance` maps).
pub const CHANNELS: [&str; 7] = [
    "depth",
    "depth@100ms",
    "depth@250ms",
    "depth@500ms",
    "depth@1000ms",
    "bookTicker",
    "trade",
];

impl Default for BinanceConfig {
    fn default() -> Self {
        BinanceConfig {
            ws_url: String::new(),
            rest_url: String::new(),
            market: Market::Spot,
            symbols: Vec::new(),
            channels: vec!["depth@100ms".into(), "bookTicker".into(), "trade".into()],
            snapshot_limit: 1000,
            ca_file: None,
            reconnect_min_ms: 100,
            reconnect_max_ms: 10_000,
            stale_after_s: 30,
        }
    }
}

impl BinanceConfig {
    /// The reconnect backoff's bounds.
    pub fn reconnect_range(&self) -> (Duration, Duration) {
        let min = self.reconnect_min_ms.max(1);
        (
            Duration::from_millis(min),
            Duration::from_millis(self.reconnect_max_ms.max(min)),
        )
    }

    /// Fills in the market's URLs and checks the rest.
    fn finish(&mut self) -> std::result::Result<(), String> {
        if self.ws_url.is_empty() {
            self.ws_url = match self.market {
                Market::Spot => "wss://stream.binance.com:9443/stream",
                Market::Usdm => "wss://fstream.binance.com/stream",
            }
            .into();
        }
        if self.rest_url.is_empty() {
            self.rest_url = match self.market {
                Market::Spot => "https://api.binance.com",
                Market::Usdm => "https://fapi.binance.com",
            }
            .into();
        }
        let what = format!("inputs.binance {}", self.ws_url);
        if self.symbols.is_empty() || self.channels.is_empty() {
            return Err(format!(
                "{what}: `symbols` and `channels` must not be empty"
            ));
        }
        if let Some(s) = self
            .symbols
            .iter()
            .find(|s| s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(format!(
                "{what}: symbol {s:?} is not a Binance symbol (letters and digits)"
            ));
        }
        if let Some(c) = self
            .channels
            .iter()
            .find(|c| !CHANNELS.contains(&c.as_str()))
        {
            return Err(format!(
                "{what}: channel {c:?} is not one of {}",
                CHANNELS.join(", ")
            ));
        }
        if self
            .channels
            .iter()
            .filter(|c| c.starts_with("depth"))
            .count()
            > 1
        {
            return Err(format!(
                "{what}: at most one depth channel (two would interleave their update ids)"
            ));
        }
        crate::net::Url::parse(&self.ws_url).map_err(|e| format!("{what}: ws_url: {e}"))?;
        crate::net::Url::parse(&self.rest_url).map_err(|e| format!("{what}: rest_url: {e}"))?;
        let limit_ok = match self.market {
            Market::Spot => (1..=5000).contains(&self.snapshot_limit),
            Market::Usdm => [5, 10, 20, 50, 100, 500, 1000].contains(&self.snapshot_limit),
        };
        if !limit_ok {
            return Err(format!(
                "{what}: snapshot_limit {} is not allowed (spot: 1 to 5000; usdm: 5, 10, 20, 50, 100, 500, 1000)",
                self.snapshot_limit
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    /// `file://DIR` (or a path), `postgres://..`, `clickhouse://..`; `${VAR}` is replaced by
    /// the environment variable.
    pub store: String,
    /// A micro-batch is flushed at this many events ...
    pub batch_events: usize,
    /// ... or when its oldest market-data event has waited this long ...
    pub flush_ms: u64,
    /// ... or its oldest critical event (orders, fills, positions, risk, audit) this long.
    pub critical_flush_ms: u64,
    /// Retries of a failed append back off exponentially up to this.
    pub retry_max_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MarketDataConfig {
    /// Under overload, drop market data (oldest first per stream, before it gets a seq; each
    /// loss counted and marked by a `book_gap` event in its stream) instead of holding it.
    pub lossy: bool,
    /// Market-data events held per stream while overloaded (then the oldest is dropped).
    pub queue_per_stream: usize,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            dir: PathBuf::from("wal"),
            segment_mb: 64,
            sync_bytes: 4 << 20,
            sync_delay_us: 500,
            max_backlog_events: 50_000_000,
            dedup_window: 250_000,
        }
    }
}

impl Default for InputsConfig {
    fn default() -> Self {
        InputsConfig {
            tcp: None,
            unix: None,
            http: None,
            max_line_bytes: 1 << 20,
            max_connections: 1024,
            idle_timeout_s: 60,
            binance: Vec::new(),
        }
    }
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            store: String::new(),
            batch_events: 10_000,
            flush_ms: 200,
            critical_flush_ms: 20,
            retry_max_ms: 5_000,
        }
    }
}

impl Default for MarketDataConfig {
    fn default() -> Self {
        MarketDataConfig {
            lossy: false,
            queue_per_stream: 10_000,
        }
    }
}

impl RecordConfig {
    /// Reads `path` (TOML).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text).map_err(|message| Error::Corrupt {
            path: path.to_path_buf(),
            line: 0,
            message,
        })
    }

    /// Parses TOML text; the error says which key is wrong and where.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// Checks what defaults cannot: something to listen on, somewhere to store, sane sizes.
    /// Store URIs get their `${VAR}`s replaced.
    pub fn finish(mut self) -> std::result::Result<Self, String> {
        if self.sinks.is_empty() {
            return Err(
                "no sink: add a [[sinks]] table with `store = \"URI\"` or pass --sink URI".into(),
            );
        }
        for s in &mut self.sinks {
            if s.store.is_empty() {
                return Err("a [[sinks]] table has no `store`".into());
            }
            s.store = expand_env(&s.store)?;
            if s.batch_events == 0 {
                return Err(format!(
                    "sink {}: batch_events must be at least 1",
                    crate::store::uri::redact(&s.store)
                ));
            }
        }
        let i = &self.inputs;
        if i.tcp.is_none() && i.unix.is_none() && i.http.is_none() && i.binance.is_empty() {
            return Err(
                "no input: set inputs.tcp, inputs.unix, inputs.http (or --tcp/--unix/--http) or add an [[inputs.binance]] feed"
                    .into(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for b in &mut self.inputs.binance {
            b.finish()?;
            for sym in &b.symbols {
                let stream = crate::import::binance::stream_key(b.market, sym);
                if !seen.insert(stream.clone()) {
                    return Err(format!(
                        "{stream} is in two [[inputs.binance]] feeds: one feed per symbol (two would interleave their update ids)"
                    ));
                }
            }
        }
        if self.inputs.max_line_bytes < 1024 {
            return Err("inputs.max_line_bytes must be at least 1024".into());
        }
        if self.wal.segment_mb == 0 || self.wal.max_backlog_events == 0 {
            return Err("wal.segment_mb and wal.max_backlog_events must be at least 1".into());
        }
        Ok(self)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.inputs.idle_timeout_s.max(1))
    }
}

/// Replaces `${NAME}` with the environment variable `NAME`; a missing one is an error naming
/// it (never an empty password silently).
pub fn expand_env(s: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in {}", crate::store::uri::redact(s)))?;
        let name = &after[..end];
        let value = std::env::var(name).map_err(|_| {
            format!("environment variable {name} (named in a store URI) is not set")
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults_and_finish_names_what_is_missing() {
        let c = RecordConfig::parse("").unwrap();
        assert_eq!(c.wal.segment_mb, 64);
        assert!(c.clone().finish().unwrap_err().contains("no sink"));
        let c = RecordConfig::parse("[[sinks]]\nstore = \"file://x\"\n").unwrap();
        assert!(c.finish().unwrap_err().contains("no input"));
    }

    #[test]
    fn a_binance_feed_is_an_input_and_its_mistakes_are_named() {
        let base = "[[sinks]]\nstore = \"file://x\"\n[[inputs.binance]]\n";
        let c = RecordConfig::parse(&format!("{base}symbols = [\"BTCUSDT\"]\n")).unwrap();
        let c = c.finish().unwrap();
        let b = &c.inputs.binance[0];
        assert_eq!(b.ws_url, "wss://stream.binance.com:9443/stream");
        assert_eq!(b.channels, ["depth@100ms", "bookTicker", "trade"]);
        let err = RecordConfig::parse(base).unwrap().finish().unwrap_err();
        assert!(err.contains("`symbols`"), "{err}");
        let bad = format!("{base}symbols = [\"X\"]\nrest_url = \"ftp://h\"\n");
        let err = RecordConfig::parse(&bad).unwrap().finish().unwrap_err();
        assert!(err.contains("rest_url"), "{err}");
        let err = RecordConfig::parse(&format!("{base}market = \"coinm\"\n")).unwrap_err();
        assert!(err.contains("coinm"), "{err}");
        let usdm = format!("{base}market = \"usdm\"\nsymbols = [\"BTCUSDT\"]\n");
        let c = RecordConfig::parse(&usdm).unwrap().finish().unwrap();
        assert_eq!(c.inputs.binance[0].rest_url, "https://fapi.binance.com");
        for (extra, want) in [
            ("channels = [\"aggTrade\"]", "not one of"),
            (
                "channels = [\"depth\", \"depth@100ms\"]",
                "one depth channel",
            ),
            ("snapshot_limit = 5000", "snapshot_limit 5000"),
            ("symbols = [\"BTC/USDT\"]", "not a Binance symbol"),
        ] {
            let symbols = if extra.starts_with("symbols") {
                ""
            } else {
                "symbols = [\"BTCUSDT\"]\n"
            };
            let text = format!("{base}market = \"usdm\"\n{symbols}{extra}\n");
            let err = RecordConfig::parse(&text).unwrap().finish().unwrap_err();
            assert!(err.contains(want), "{extra}: {err}");
        }
        let twice =
            format!("{base}symbols = [\"ETHUSDT\"]\n[[inputs.binance]]\nsymbols = [\"ethusdt\"]\n");
        let err = RecordConfig::parse(&twice).unwrap().finish().unwrap_err();
        assert!(err.contains("two [[inputs.binance]]"), "{err}");
    }

    #[test]
    fn a_misspelt_key_is_refused_with_its_name() {
        let err = RecordConfig::parse("[wal]\nsegmnet_mb = 3\n").unwrap_err();
        assert!(err.contains("segmnet_mb"), "{err}");
    }

    #[test]
    fn env_references_are_expanded_and_missing_ones_named() {
        // SAFETY: no other test reads or writes this variable.
        unsafe { std::env::set_var("TAPEDECK_TEST_CFG_PW", "s3cret") };
        assert_eq!(
            expand_env("postgres://u:${TAPEDECK_TEST_CFG_PW}@h/db").unwrap(),
            "postgres://u:s3cret@h/db"
        );
        let err = expand_env("postgres://u:${TAPEDECK_TEST_CFG_NOPE}@h/db").unwrap_err();
        assert!(err.contains("TAPEDECK_TEST_CFG_NOPE"), "{err}");
        assert!(expand_env("x${").is_err());
    }
}
