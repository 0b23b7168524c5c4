//! Live sessions (`tapedeck live`): the recorder, the same strategy modules as in backtests
//! on its durable events, a paper venue, and a control API that swaps modules while events
//! flow.
//!
//! ```text
//!  inputs ─► recorder (seq, WAL fsync) ─► sinks (stores)
//!                         │
//!                         └─► engine: per stream, batches of durable events
//!                               ├─► active module ─► decisions ─► paper venue
//!                               │                                     │
//!                               ├─► shadow module (compared only)     ▼
//!                               │              exec events (orders, acks, fills) ─► recorder
//!  control API ─► commands, applied between two batches: swap, shadow, promote, rollback
//! ```
//!
//! - Events reach a module only once durable (the engine reads the WAL behind the fsync).
//! - Everything the session does is recorded through the same recorder: orders, acks,
//!   cancels and fills in `exec:<venue>:<symbol>`, control actions and findings in
//!   `live:<session>`. The session is itself a recorded history.
//! - A swap hands the state over (`snapshot` → `restore`) or, when the new module refuses
//!   it, rebuilds it by catch-up over the stream's stored events; it happens between two
//!   batches of each stream, so no event is skipped or applied twice. A trap of the active
//!   module rolls back to the previous one (its state at the swap, caught up), records a
//!   finding and raises an alert in the log; the session goes on.
//! - Modules, fuel and memory limits are the backtest's (one [`Runtime`]).

pub mod config;
pub mod control;
pub mod engine;
pub mod exec;
pub mod metrics;
pub mod sink;
pub mod verify;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;

pub use config::LiveConfig;
use engine::{Engine, EngineParts, Loaded};

use crate::error::{Error, Result};
use crate::hash::ModuleHash;
use crate::net;
use crate::recorder::{Recorder, RunningRecorder};
use crate::runtime::{ModuleKind, Runtime};

/// The name of the engine's WAL reader.
const READER: &str = "live";

/// A running live session.
pub struct RunningLive {
    pub recorder: RunningRecorder,
    /// Where the control API listens.
    pub control: SocketAddr,
    pub control_tls: bool,
    pub metrics: Arc<metrics::LiveMetrics>,
    engine: JoinHandle<Result<()>>,
    stop: Arc<AtomicBool>,
    sink: Option<(JoinHandle<()>, Arc<AtomicBool>)>,
    control_rt: tokio::runtime::Runtime,
}

/// Starts a session: the recorder (WAL recovered), the engine, the control API.
pub fn start(cfg: LiveConfig, rt: Runtime) -> Result<RunningLive> {
    let settings = |m: String| Error::message("live settings", m);
    let token = cfg.check().map_err(settings)?;
    let venue = cfg.venue.venue_config().map_err(settings)?;
    let record = cfg.record_config().map_err(settings)?;
    let rt = Arc::new(rt);
    let bytes = std::fs::read(&cfg.live.strategy).map_err(|e| Error::io(&cfg.live.strategy, e))?;
    let module = rt.load(&cfg.live.strategy)?;
    if module.kind() != ModuleKind::Strategy {
        return Err(settings(format!(
            "{} is a {}: live runs strategies",
            cfg.live.strategy.display(),
            module.kind().as_str()
        )));
    }
    let sha256 = ModuleHash::of(&bytes).hex();
    // The config is checked before anything starts.
    rt.instantiate(&module)?.init(&cfg.live.config)?;
    let modules_dir = cfg.modules_dir();
    std::fs::create_dir_all(&modules_dir).map_err(|e| Error::io(&modules_dir, e))?;
    // Every module the session runs is kept by its sha256: a replay of the session loads
    // them from here.
    let kept = modules_dir.join(format!("{sha256}.wasm"));
    if !kept.exists() {
        crate::fs::write_atomic(&kept, &bytes)?;
    }
    let catch_up_store = record.sinks[0].store.parse()?;

    let recorder = Recorder::new(record).with_reader(READER).start()?;
    let submit = recorder
        .submitter()
        .expect("a started recorder takes submissions");
    let reader = recorder.reader(READER).expect("registered");
    let sink_stop = Arc::new(AtomicBool::new(false));
    let (order_sink, sink_thread) = match &cfg.order_sink {
        Some(o) => {
            let target = sink::Target::parse(&o.url).map_err(settings)?;
            let tls = net::client_tls(o.ca_file.as_deref())?;
            let (s, h) = sink::OrderSink::start(target, tls, sink_stop.clone())?;
            (Some(s), Some(h))
        }
        None => (None, None),
    };
    let metrics = Arc::new(metrics::LiveMetrics::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let active = Arc::new(Loaded {
        module: module.clone(),
        sha256: sha256.clone(),
        config: cfg.live.config.clone(),
    });
    // What the session runs with (the engine adds the module it starts with, which after a
    // restart is the one active before).
    let started = serde_json::json!({
        "streams": cfg.live.streams,
        "batch": cfg.live.batch,
        "venue": cfg.live.venue,
        "paper_venue": venue,
        "runtime": rt.config(),
        "first_lsn": recorder.first_lsn,
    });
    let parts = EngineParts {
        rt: rt.clone(),
        session: cfg.live.session.clone(),
        streams: cfg.live.streams.clone(),
        batch: cfg.live.batch,
        venue_name: cfg.live.venue.clone(),
        venue,
        active,
        reader,
        submit: submit.clone(),
        catch_up_store,
        wal_dir: recorder.wal_dir().to_path_buf(),
        modules_dir: modules_dir.clone(),
        started,
        order_sink,
        recent_events: cfg.live.recent_events,
        commands: rx,
        metrics: metrics.clone(),
        stop: stop.clone(),
    };
    let engine = std::thread::Builder::new()
        .name("tapedeck-live".into())
        .spawn(move || {
            let r = Engine::new(parts).run();
            if let Err(e) = &r {
                tracing::error!(error = %e, "ALERT: the live engine stopped");
            }
            r
        })
        .map_err(|e| Error::message("starting the live engine", e.to_string()))?;

    let mut modules = std::collections::BTreeMap::new();
    modules.insert(sha256, module);
    let control = Arc::new(control::Control {
        token,
        session: cfg.live.session.clone(),
        rt,
        modules_dir,
        modules: std::sync::Mutex::new(modules),
        commands: tx,
        recorder: recorder.metrics.clone(),
        live: metrics.clone(),
        submit,
    });
    let control_rt = net::runtime("tapedeck-live-ctl")?;
    let tls = match (&cfg.control.tls_cert, &cfg.control.tls_key) {
        (Some(c), Some(k)) => Some(net::server_tls(c, k)?),
        _ => None,
    };
    let listener = control_rt
        .block_on(tokio::net::TcpListener::bind(cfg.control.listen))
        .map_err(|e| {
            Error::message(
                "starting the control API",
                format!("cannot listen on {}: {e}", cfg.control.listen),
            )
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::message("starting the control API", e.to_string()))?;
    let control_tls = tls.is_some();
    if !control_tls && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the control API listens beyond loopback without TLS: the token crosses the network in clear; set control.tls_cert and control.tls_key");
    }
    control_rt.spawn(serve(listener, control, tls));
    Ok(RunningLive {
        recorder,
        control: addr,
        control_tls,
        metrics,
        engine,
        stop,
        sink: sink_thread.map(|h| (h, sink_stop)),
        control_rt,
    })
}

async fn serve(
    l: tokio::net::TcpListener,
    control: Arc<control::Control>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let (s, peer) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                net::accept_failed(e).await;
                continue;
            }
        };
        let control = control.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let peer = peer.to_string();
            let svc =
                hyper::service::service_fn(move |req| control.clone().handle(peer.clone(), req));
            match tls {
                Some(acceptor) => {
                    if let Ok(s) = acceptor.accept(s).await {
                        net::serve_http(s, svc).await;
                    }
                }
                None => net::serve_http(s, svc).await,
            }
        });
    }
}

impl RunningLive {
    /// Blocks until SIGINT or SIGTERM, or until the engine or the recorder fails.
    pub fn wait(&self) -> Result<()> {
        let rt = net::runtime("tapedeck-live-wait")?;
        rt.block_on(net::until_signal(|| {
            self.engine.is_finished() || self.recorder.failed()
        }))
    }

    /// Stops the control API, then the engine (after the events it has read), then the
    /// recorder (acknowledging and storing what it took).
    pub fn stop(self) -> Result<()> {
        self.control_rt
            .shutdown_timeout(std::time::Duration::from_secs(2));
        self.stop.store(true, Relaxed);
        let engine = self
            .engine
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        if let Some((h, stopping)) = self.sink {
            // What the executor takes is delivered; one that is down is not waited for.
            stopping.store(true, Relaxed);
            let _ = h.join();
        }
        let recorder = self.recorder.stop();
        engine.and(recorder)
    }
}
