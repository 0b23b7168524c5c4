//! `tapedeck live` (a live session) and `tapedeck ctl` (its control API).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use tapedeck::live::LiveConfig;
use tapedeck::runtime::{Runtime, RuntimeConfig};

/// Run strategies live: the recorder (inputs, WAL, sinks, as `tapedeck record`), the
/// strategy module on every durable event of the streams `live.streams` matches, its orders
/// executed by a paper venue (the backtest's venue model) and recorded with their fills in
/// `exec:<venue>:<symbol>`, and a control API to swap, shadow, promote and roll back modules
/// while events flow (`tapedeck ctl`). Runs until SIGINT/SIGTERM. Settings: live.toml (see
/// README "Live sessions"). Prints one line saying where it listens, then logs to stderr.
#[derive(clap::Args, Debug)]
pub struct Live {
    /// The settings file (live.toml).
    #[arg(long)]
    pub config: PathBuf,
    /// Log lines as JSON objects instead of text.
    #[arg(long)]
    pub log_json: bool,
}

impl Live {
    pub fn run(self) -> Result<ExitCode> {
        let cfg = LiveConfig::load(&self.config)?;
        super::record::init_logs(self.log_json);
        let rt = Runtime::new(RuntimeConfig::default())?;
        let running = tapedeck::live::start(cfg, rt)
            .with_context(|| format!("starting the session of {}", self.config.display()))?;
        tracing::info!(recovery = %running.recorder.recovery, "recovered");
        let mut at = Vec::new();
        if let Some(a) = running.recorder.tcp {
            at.push(format!("tcp {a}"));
        }
        if let Some(p) = &running.recorder.unix {
            at.push(format!("unix {}", p.display()));
        }
        if let Some(a) = running.recorder.http {
            at.push(format!("http {a}"));
        }
        let scheme = if running.control_tls { "https" } else { "http" };
        outln!(
            "live: control {scheme}://{}, recording {}",
            running.control,
            at.join(", ")
        );
        running.wait()?;
        tracing::info!("stopping: the engine runs what it read, the recorder stores what it took");
        running.stop()?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Control a live session: status, modules, upload, swap, shadow, promote, rollback,
/// metrics. Prints the session's JSON answer; exit 0 when the call succeeded, 1 when the
/// session refused it (the answer says why), 2 when it could not be reached.
#[derive(clap::Args, Debug)]
pub struct Ctl {
    /// The control API [env: TAPEDECK_CONTROL; default: http://127.0.0.1:7070].
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// A file holding the bearer token [else env TAPEDECK_TOKEN].
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Trust this CA (PEM) for an https:// control API.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    #[command(subcommand)]
    pub call: Call,
}

#[derive(clap::Subcommand, Debug)]
pub enum Call {
    /// The session: modules, per stream the last seq applied, decisions, fills, PnL, shadow
    /// divergence, findings, swap pauses.
    Status,
    /// The modules the session knows (name, version, sha256, role, since which seq).
    Modules,
    /// Upload a module (pinned by the SHA-256 of the file; compiled by the session).
    Upload { file: PathBuf },
    /// Make an uploaded module the active one: its state is handed over (snapshot →
    /// restore) or rebuilt by catch-up.
    Swap {
        /// The module's sha256 (as `upload` printed it), or its file (uploaded first).
        module: String,
        /// Its JSON config ("" for its defaults).
        #[arg(long, default_value = "")]
        config: String,
    },
    /// Run a module beside the active one: decisions compared, never executed.
    Shadow {
        module: String,
        #[arg(long, default_value = "")]
        config: String,
    },
    /// Make the shadow module the active one.
    Promote,
    /// Back to the module active before the last swap.
    Rollback,
    /// The Prometheus metrics.
    Metrics,
}

impl Ctl {
    pub fn run(self) -> Result<ExitCode> {
        let url = self
            .url
            .clone()
            .or_else(|| std::env::var("TAPEDECK_CONTROL").ok())
            .unwrap_or_else(|| "http://127.0.0.1:7070".into());
        let token = match &self.token_file {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("reading the token file {}", p.display()))?
                .trim()
                .to_string(),
            None => std::env::var("TAPEDECK_TOKEN").context(
                "no token: pass --token-file FILE or set TAPEDECK_TOKEN (the control token of live.toml)",
            )?,
        };
        let client = Client {
            base: url.trim_end_matches('/').to_string(),
            token,
            tls: tapedeck::net::client_tls(self.ca_file.as_deref())?,
        };
        let rt = tapedeck::net::runtime("tapedeck-ctl")?;
        rt.block_on(self.call.run(&client))
    }
}

struct Client {
    base: String,
    token: String,
    tls: tapedeck::net::ClientTls,
}

impl Client {
    async fn call(&self, method: &str, path: &str, body: Vec<u8>) -> Result<tapedeck::net::Got> {
        let full = format!("{}{path}", self.base);
        let url = tapedeck::net::Url::parse(&full).map_err(anyhow::Error::msg)?;
        let auth = [("authorization", format!("Bearer {}", self.token))];
        tapedeck::net::request(&url, &self.tls, method, &auth, body)
            .await
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("calling the live session at {}", self.base))
    }

    async fn upload(&self, file: &PathBuf) -> Result<String> {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let sha = tapedeck::hash::ModuleHash::of(&bytes).hex();
        let got = self
            .call("POST", &format!("/modules?sha256={sha}"), bytes)
            .await?;
        if got.status != 201 {
            bail!(
                "uploading {}: {} {}",
                file.display(),
                got.status,
                String::from_utf8_lossy(&got.body)
            );
        }
        Ok(sha)
    }

    /// A module argument: a sha256, or a file to upload first.
    async fn module(&self, arg: &str) -> Result<String> {
        let is_sha = arg.len() == 64 && arg.bytes().all(|b| b.is_ascii_hexdigit());
        if is_sha {
            return Ok(arg.to_ascii_lowercase());
        }
        self.upload(&PathBuf::from(arg)).await
    }
}

impl Call {
    async fn run(self, c: &Client) -> Result<ExitCode> {
        let choose = |sha: String, config: String| {
            serde_json::to_vec(&serde_json::json!({ "sha256": sha, "config": config }))
                .expect("JSON")
        };
        let got = match self {
            Call::Status => c.call("GET", "/status", Vec::new()).await?,
            Call::Modules => c.call("GET", "/modules", Vec::new()).await?,
            Call::Metrics => c.call("GET", "/metrics", Vec::new()).await?,
            Call::Upload { file } => {
                let sha = c.upload(&file).await?;
                outln!("{sha}");
                return Ok(ExitCode::SUCCESS);
            }
            Call::Swap { module, config } => {
                let sha = c.module(&module).await?;
                c.call("POST", "/swap", choose(sha, config)).await?
            }
            Call::Shadow { module, config } => {
                let sha = c.module(&module).await?;
                c.call("POST", "/shadow", choose(sha, config)).await?
            }
            Call::Promote => c.call("POST", "/promote", Vec::new()).await?,
            Call::Rollback => c.call("POST", "/rollback", Vec::new()).await?,
        };
        outln!("{}", String::from_utf8_lossy(&got.body).trim_end());
        if got.status == 401 {
            bail!("the session refused the token (401)");
        }
        Ok(if (200..300).contains(&got.status) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}
