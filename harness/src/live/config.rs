//! `live.toml`: a recorder's sections (`[wal]`, `[inputs]`, `[[sinks]]`, `[market_data]`, as
//! in `record.toml`) plus what runs on its events (`[live]`), the paper venue (`[venue]`)
//! and the control API (`[control]`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::recorder::RecordConfig;
use crate::recorder::config::{InputsConfig, MarketDataConfig, SinkConfig, WalConfig, expand_env};
use crate::venue::VenueConfig;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    pub wal: WalConfig,
    pub inputs: InputsConfig,
    pub sinks: Vec<SinkConfig>,
    pub market_data: MarketDataConfig,
    pub live: LiveSection,
    pub venue: PaperVenue,
    pub control: ControlConfig,
    /// Send orders to a real executor instead of the paper venue.
    pub order_sink: Option<OrderSinkConfig>,
}

/// `[order_sink]`: see [`super::sink`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrderSinkConfig {
    /// `tcp://HOST:PORT` (NDJSON lines over a socket) or `http(s)://HOST:PORT/PATH` (NDJSON
    /// POSTs).
    pub url: String,
    /// Extra certificates to trust for https.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveSection {
    /// Names the session: its audit stream is `live:<session>`.
    pub session: String,
    /// The streams the strategy runs on (a glob over stream keys).
    pub streams: String,
    /// The strategy module active at start (a `.wasm` file).
    pub strategy: PathBuf,
    /// Its JSON config ("" for its defaults).
    pub config: String,
    /// Where uploaded modules are kept (by sha256) [default: `<wal.dir>/../live-modules`].
    pub modules_dir: Option<PathBuf>,
    /// Events per guest call, at most (a batch also ends when the WAL has no more durable
    /// events: under light load every event is decided on as soon as it is durable).
    pub batch: usize,
    /// The venue name in exec stream keys (`exec:<venue>:<symbol>`).
    pub venue: String,
    /// The last events kept in memory per stream (~100 bytes each for quotes): a swap back to
    /// a module that left the stream within them catches up without reading the store.
    pub recent_events: usize,
}

impl Default for LiveSection {
    fn default() -> Self {
        LiveSection {
            session: "live".into(),
            streams: "md:*".into(),
            strategy: PathBuf::new(),
            config: String::new(),
            modules_dir: None,
            batch: 1024,
            venue: "paper".into(),
            recent_events: 100_000,
        }
    }
}

/// The paper venue: the backtest's venue, latency in event time; with `model`, the realistic
/// venue model of that JSON file (as `--venue`; its latencies constant or empirical, since
/// there is no tape to fit them from before the session).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaperVenue {
    pub latency_ms: f64,
    pub maker_fee_bps: f64,
    pub taker_fee_bps: f64,
    pub model: Option<PathBuf>,
}

impl Default for PaperVenue {
    fn default() -> Self {
        let v = VenueConfig::default();
        PaperVenue {
            latency_ms: v.latency_ns as f64 / 1e6,
            maker_fee_bps: v.maker_fee_bps,
            taker_fee_bps: v.taker_fee_bps,
            model: None,
        }
    }
}

impl PaperVenue {
    /// The settings, with the model file read and checked.
    pub fn venue_config(&self) -> std::result::Result<VenueConfig, String> {
        let model = match &self.model {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("venue.model {}: {e}", path.display()))?;
                let m = crate::venue::VenueModel::from_json(&text)
                    .map_err(|e| format!("venue.model {}: {e}", path.display()))?;
                if m.needs_tape() {
                    return Err(format!(
                        "venue.model {}: a tape latency cannot be fitted before a live session; \
                         use a constant or empirical one (`tapedeck reconcile --fit` writes one)",
                        path.display()
                    ));
                }
                Some(m)
            }
            None => None,
        };
        Ok(VenueConfig {
            latency_ns: (self.latency_ms * 1e6).round() as i64,
            maker_fee_bps: self.maker_fee_bps,
            taker_fee_bps: self.taker_fee_bps,
            // Live keeps no equity curve: one sample per million events at most.
            sample_every: 1_000_000,
            equity_interval_ns: None,
            model,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    /// Where the control API listens (loopback by default; port 0: any free port).
    pub listen: SocketAddr,
    /// The bearer token every call must carry (may name an environment variable,
    /// `${TAPEDECK_TOKEN}`); or `token_file`.
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate and key (PEM).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            token: None,
            token_file: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// The shortest token accepted: a guessable one would make the control API open.
pub const MIN_TOKEN: usize = 16;

impl LiveConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text).map_err(|message| Error::Corrupt {
            path: path.to_path_buf(),
            line: 0,
            message,
        })
    }

    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// The recorder's part, checked as `tapedeck record` checks it.
    pub fn record_config(&self) -> std::result::Result<RecordConfig, String> {
        RecordConfig {
            wal: self.wal.clone(),
            inputs: self.inputs.clone(),
            sinks: self.sinks.clone(),
            market_data: self.market_data.clone(),
        }
        .finish()
    }

    /// Checks the live part; returns the control token.
    pub fn check(&self) -> std::result::Result<String, String> {
        let l = &self.live;
        if l.strategy.as_os_str().is_empty() {
            return Err(
                "live.strategy: name the strategy module (a .wasm file) to start with".into(),
            );
        }
        if l.batch == 0 {
            return Err("live.batch must be at least 1".into());
        }
        if l.session.is_empty() || l.session.chars().any(|c| c.is_control() || c == ':') {
            return Err(format!(
                "live.session {:?}: a name without ':' or control characters",
                l.session
            ));
        }
        if l.venue.is_empty() || l.venue.contains(':') {
            return Err(format!("live.venue {:?}: a name without ':'", l.venue));
        }
        if !(self.venue.latency_ms >= 0.0 && self.venue.latency_ms.is_finite()) {
            return Err("venue.latency_ms must be 0 or more".into());
        }
        self.venue.venue_config()?;
        if let Some(o) = &self.order_sink {
            super::sink::Target::parse(&o.url)?;
        }
        let c = &self.control;
        if c.tls_cert.is_some() != c.tls_key.is_some() {
            return Err("control.tls_cert and control.tls_key go together".into());
        }
        let token = match (&c.token, &c.token_file) {
            (Some(t), None) => expand_env(t)?,
            (None, Some(p)) => std::fs::read_to_string(p)
                .map_err(|e| format!("control.token_file {}: {e}", p.display()))?
                .trim()
                .to_string(),
            (Some(_), Some(_)) => return Err("control: give token or token_file, not both".into()),
            (None, None) => {
                return Err(
                    "control: set token (e.g. token = \"${TAPEDECK_TOKEN}\") or token_file; the control API swaps strategies and is never open".into(),
                );
            }
        };
        if token.len() < MIN_TOKEN {
            return Err(format!(
                "control token: at least {MIN_TOKEN} characters (try `openssl rand -hex 24`)"
            ));
        }
        Ok(token)
    }

    pub fn modules_dir(&self) -> PathBuf {
        self.live.modules_dir.clone().unwrap_or_else(|| {
            let wal = &self.wal.dir;
            wal.parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
                .join("live-modules")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> LiveConfig {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn a_live_config_needs_a_strategy_and_a_long_token() {
        let base = r#"
            [live]
            strategy = "s.wasm"
            [control]
            token = "0123456789abcdef0123"
            [[sinks]]
            store = "file:x"
            [inputs]
            tcp = "127.0.0.1:0"
        "#;
        let c = parse(base);
        assert_eq!(c.check().unwrap(), "0123456789abcdef0123");
        assert!(c.record_config().is_ok());
        assert_eq!(c.control.listen.ip().to_string(), "127.0.0.1");

        let short = parse(&base.replace("0123456789abcdef0123", "short"));
        assert!(short.check().unwrap_err().contains("at least 16"));
        let open = parse(&base.replace("token = \"0123456789abcdef0123\"", ""));
        assert!(open.check().unwrap_err().contains("never open"));
        let none = parse(&base.replace("strategy = \"s.wasm\"", ""));
        assert!(none.check().unwrap_err().contains("live.strategy"));
        let colon = parse(&base.replace("[live]", "[live]\nsession = \"a:b\""));
        assert!(colon.check().unwrap_err().contains("live.session"));
        assert!(
            toml::from_str::<LiveConfig>("[live]\nstrategyy = \"x\"")
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
    }
}
