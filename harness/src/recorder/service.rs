//! Starting and stopping a recorder: recovery, listeners, the sequencer and sink threads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, mpsc, watch};

use super::Class;
use super::binance::{BinanceClient, RestGate};
use super::config::RecordConfig;
use super::files;
use super::ingress::Ingress;
use super::metrics::Metrics;
use super::sequencer::{Progress, Recovered, Sequencer};
use super::sink::SinkWorker;
use super::wal::{Wal, WalOptions};
use crate::error::{Error, Result};
use crate::event::Envelope;
use crate::net;
use crate::store::StoreUri;

/// A recorder to start; see the [module doc](super).
#[derive(Debug, Clone)]
pub struct Recorder {
    pub config: RecordConfig,
    /// Names of WAL readers besides the sinks ([`RunningRecorder::reader`]).
    pub readers: Vec<String>,
}

/// A started recorder: where it listens, its metrics, and how to stop it.
pub struct RunningRecorder {
    pub tcp: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub unix: Option<PathBuf>,
    pub metrics: Arc<Metrics>,
    /// What recovery found at start.
    pub recovery: String,
    /// The first LSN this start appended (everything before was recovered).
    pub start_lsn: u64,
    /// The oldest record the WAL kept (readers start there: what they had not taken before
    /// a crash is still in it).
    pub first_lsn: u64,
    /// In-process submissions (the live engine's own events); dropped by [`Self::stop`].
    submit: Option<mpsc::Sender<super::sequencer::Submission>>,
    wal_dir: PathBuf,
    rt: tokio::runtime::Runtime,
    stop_accepting: watch::Sender<bool>,
    progress: Arc<Progress>,
    sequencer: JoinHandle<Result<()>>,
    sinks: Vec<JoinHandle<Result<()>>>,
}

/// Submissions waiting for the sequencer, at most (then inputs wait).
const QUEUE: usize = 1024;

impl Recorder {
    pub fn new(config: RecordConfig) -> Self {
        Recorder {
            config,
            readers: Vec::new(),
        }
    }

    /// Registers a WAL reader besides the sinks: the WAL keeps what it has not taken.
    pub fn with_reader(mut self, name: &str) -> Self {
        self.readers.push(name.to_string());
        self
    }

    /// Recovers the WAL, binds the inputs, starts the sequencer and the sinks.
    pub fn start(self) -> Result<RunningRecorder> {
        let cfg = self.config;
        let uris: Vec<StoreUri> = cfg
            .sinks
            .iter()
            .map(|s| s.store.parse())
            .collect::<Result<_>>()?;
        let names = uris.iter().map(|u| u.redacted());
        let mut metrics = Metrics::new(names);
        metrics.readers = self
            .readers
            .iter()
            .map(|name| super::metrics::ReaderMetrics {
                name: name.clone(),
                ..Default::default()
            })
            .collect();
        let metrics = Arc::new(metrics);
        let (wal, recovery, recovered, said) = recover(&cfg, &uris, &metrics)?;
        // Readers start at the oldest record kept.
        for r in &metrics.readers {
            r.read_lsn.store(recovery.first_lsn - 1, Relaxed);
        }

        let rt = net::runtime("tapedeck-record-io")?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let ingress = Ingress {
            tx,
            metrics: metrics.clone(),
            max_line_bytes: cfg.inputs.max_line_bytes,
            idle_timeout: cfg.idle_timeout(),
            connections: Arc::new(Semaphore::new(cfg.inputs.max_connections)),
        };
        let (stop_accepting, stop_rx) = watch::channel(false);
        let bind_err = |what: &str, addr: &dyn std::fmt::Display, e: std::io::Error| {
            Error::message(
                "starting the recorder",
                format!("cannot listen on {what} {addr}: {e}"),
            )
        };
        let bind_tcp = |what: &str, addr: SocketAddr| -> Result<(TcpListener, SocketAddr)> {
            let l = rt
                .block_on(TcpListener::bind(addr))
                .map_err(|e| bind_err(what, &addr, e))?;
            let local = l.local_addr().map_err(|e| bind_err(what, &addr, e))?;
            Ok((l, local))
        };
        let tcp = match cfg.inputs.tcp {
            Some(addr) => {
                let (l, local) = bind_tcp("TCP", addr)?;
                rt.spawn(accept_tcp(l, ingress.clone(), stop_rx.clone()));
                Some(local)
            }
            None => None,
        };
        let http = match cfg.inputs.http {
            Some(addr) => {
                let (l, local) = bind_tcp("HTTP", addr)?;
                rt.spawn(accept_http(l, ingress.clone(), stop_rx.clone()));
                Some(local)
            }
            None => None,
        };
        let unix = match &cfg.inputs.unix {
            Some(path) => {
                let _guard = rt.enter();
                let l = bind_unix(path).map_err(|e| bind_err("Unix socket", &path.display(), e))?;
                rt.spawn(accept_unix(l, ingress.clone(), stop_rx.clone()));
                Some(path.clone())
            }
            None => None,
        };
        let rest = RestGate::default();
        for b in &cfg.inputs.binance {
            let client = BinanceClient {
                rest: rest.clone(),
                tls: crate::net::client_tls(b.ca_file.as_deref())?,
                cfg: b.clone(),
                ingress: ingress.clone(),
                stop: stop_rx.clone(),
            };
            rt.spawn(client.run());
        }
        let submit = Some(ingress.tx.clone());
        drop(ingress);

        let progress = Arc::new(Progress::default());
        progress.set_durable(recovery.next_lsn - 1);
        let seq = Sequencer::new(
            wal,
            cfg.clone(),
            rx,
            metrics.clone(),
            progress.clone(),
            recovered,
        )?;
        let sequencer = std::thread::Builder::new()
            .name("tapedeck-sequencer".into())
            .spawn(move || seq.run())
            .map_err(|e| Error::message("starting the sequencer", e.to_string()))?;
        let mut sinks = Vec::new();
        for (index, (uri, sc)) in uris.into_iter().zip(&cfg.sinks).enumerate() {
            let w = SinkWorker {
                index,
                uri,
                cfg: sc.clone(),
                wal_dir: cfg.wal.dir.clone(),
                from_lsn: recovery.first_lsn,
                metrics: metrics.clone(),
                progress: progress.clone(),
            };
            sinks.push(
                std::thread::Builder::new()
                    .name(format!("tapedeck-sink-{index}"))
                    .spawn(move || w.run())
                    .map_err(|e| Error::message("starting a sink", e.to_string()))?,
            );
        }
        Ok(RunningRecorder {
            tcp,
            http,
            unix,
            metrics,
            recovery: said,
            start_lsn: recovery.next_lsn,
            first_lsn: recovery.first_lsn,
            submit,
            wal_dir: cfg.wal.dir.clone(),
            rt,
            stop_accepting,
            progress,
            sequencer,
            sinks,
        })
    }
}

/// Hands events to a running recorder's sequencer from inside the process.
#[derive(Debug, Clone)]
pub struct Submitter {
    tx: mpsc::Sender<super::sequencer::Submission>,
}

impl Submitter {
    /// Submits `events` (in order) from a thread outside the recorder's runtime, waiting
    /// while the sequencer's queue is full; the receiver gets one reply per event once they
    /// are durable. `None` when the recorder is stopping.
    pub fn submit_blocking(
        &self,
        events: Vec<super::protocol::Incoming>,
    ) -> Option<tokio::sync::oneshot::Receiver<Vec<super::protocol::Reply>>> {
        use super::protocol::AckId;
        use super::sequencer::{Item, Submission};
        let items = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| Item::Event {
                id: AckId::Line(i as u64 + 1),
                event: Box::new(e),
            })
            .collect();
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx.blocking_send(Submission { items, reply }).ok()?;
        Some(rx)
    }
}

/// Reads the WAL from inside the process: a reader registered with [`Recorder::with_reader`].
#[derive(Debug)]
pub struct WalReader {
    pub tail: super::wal::WalTail,
    pub progress: Arc<Progress>,
    pub metrics: Arc<Metrics>,
    index: usize,
}

impl WalReader {
    /// Says the reader has taken every record up to `lsn` (the WAL may drop them).
    pub fn taken(&self, lsn: u64) {
        self.metrics.readers[self.index]
            .read_lsn
            .store(lsn, Relaxed);
    }
}

impl RunningRecorder {
    /// Submits events from inside the process. Drop every submitter before [`Self::stop`]:
    /// the sequencer ends once all are gone.
    pub fn submitter(&self) -> Option<Submitter> {
        self.submit.clone().map(|tx| Submitter { tx })
    }

    /// The reader registered as `name`, reading from the oldest record the WAL kept.
    pub fn reader(&self, name: &str) -> Option<WalReader> {
        let index = self.metrics.readers.iter().position(|r| r.name == name)?;
        Some(WalReader {
            tail: super::wal::WalTail::new(&self.wal_dir, self.first_lsn),
            progress: self.progress.clone(),
            metrics: self.metrics.clone(),
            index,
        })
    }

    pub fn wal_dir(&self) -> &std::path::Path {
        &self.wal_dir
    }

    /// Blocks until SIGINT or SIGTERM, or until the sequencer or a sink ends on its own (an
    /// error it cannot get past, which [`RunningRecorder::stop`] then returns).
    pub fn wait(&self) -> Result<()> {
        self.rt.block_on(net::until_signal(|| self.failed()))
    }

    /// Whether the sequencer or a sink has ended on its own (an error it cannot get past).
    pub fn failed(&self) -> bool {
        self.sequencer.is_finished() || self.sinks.iter().any(|s| s.is_finished())
    }

    /// Stops taking input, acknowledges what was taken, stores what the sinks can (a sink
    /// whose store is failing stops at once: the WAL keeps its backlog for the next start).
    pub fn stop(mut self) -> Result<()> {
        let _ = self.stop_accepting.send(true);
        self.submit = None;
        // Connections are dropped with the runtime; their senders with them, which is what
        // ends the sequencer once it has committed what it took.
        self.rt.shutdown_timeout(Duration::from_secs(2));
        let seq = self
            .sequencer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        self.progress.stop();
        let mut result = seq;
        for s in self.sinks {
            let r = s.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            result = result.and(r);
        }
        if let Some(p) = &self.unix {
            let _ = std::fs::remove_file(p);
        }
        result
    }
}

/// Opens the WAL (quarantining a torn tail) and works out where the sequencer starts: each
/// stream's last seq from the checkpoint (at the first start, from the stores) and every
/// record the WAL kept, the recent dedup keys, and the per-class counts the sinks' backlogs
/// are measured from. Returns the WAL, what opening it found, and a line saying so.
fn recover(
    cfg: &RecordConfig,
    uris: &[StoreUri],
    metrics: &Metrics,
) -> Result<(Wal, super::wal::Recovery, Recovered, String)> {
    let (wal, recovery) = Wal::open(
        &cfg.wal.dir,
        WalOptions {
            segment_bytes: cfg.wal.segment_mb << 20,
            ..Default::default()
        },
    )?;
    let mut said = format!(
        "WAL {}: {} records in {} segments (LSN {}..{})",
        cfg.wal.dir.display(),
        recovery.records,
        recovery.segments,
        recovery.first_lsn,
        recovery.next_lsn,
    );
    if let Some(t) = &recovery.torn {
        tracing::warn!(
            segment = %t.segment.display(),
            offset = t.offset,
            bytes = t.bytes,
            quarantined_to = %t.quarantined_to.display(),
            "the WAL had a torn tail (a crash mid-write); it was quarantined, the rest recovered"
        );
        said.push_str(&format!(
            "; a torn tail of {} bytes at {}:{} was quarantined to {}",
            t.bytes,
            t.segment.display(),
            t.offset,
            t.quarantined_to.display()
        ));
    }
    // Each stream's last seq: the checkpoint (or, at the first start, the stores), then
    // every record the WAL kept.
    let mut recovered = Recovered::default();
    let first_start = match files::read_checkpoint(&cfg.wal.dir)? {
        Some(cp) => {
            recovered.last_seq = cp;
            false
        }
        None => {
            for u in uris {
                // Writable: a file store that does not exist yet is created (empty).
                let store = u.open_writable().map_err(|e| {
                        Error::message(
                            "starting the recorder",
                            format!(
                                "a new WAL continues the streams the sinks hold, so every sink must be reachable at the first start: {e}"
                            ),
                        )
                    })?;
                for s in store.streams()? {
                    let v = recovered.last_seq.entry(s.key).or_insert(0);
                    *v = (*v).max(s.last_seq);
                }
            }
            true
        }
    };
    let mut counts = [0u64; 2];
    let window = cfg.wal.dedup_window as usize;
    let dir = cfg.wal.dir.clone();
    wal.read_from(recovery.first_lsn, &mut |lsn, bytes| {
        let e: Envelope = serde_json::from_slice(bytes).map_err(|err| Error::Corrupt {
            path: dir.clone(),
            line: lsn,
            message: format!("WAL record {lsn} is not an envelope: {err}"),
        })?;
        counts[Class::of(&e.body).index()] += 1;
        let v = recovered.last_seq.entry(e.stream_key.clone()).or_insert(0);
        *v = (*v).max(e.seq);
        if let Some(k) = e.idempotency_key {
            recovered.recent_ids.push_back(((e.stream_key, k), e.seq));
            if recovered.recent_ids.len() > window {
                recovered.recent_ids.pop_front();
            }
        }
        Ok(())
    })?;
    for c in Class::ALL {
        metrics.sequenced[c.index()].store(counts[c.index()], Relaxed);
    }
    // The sinks start at the oldest record kept: the backlog is what they have not read.
    for s in &metrics.sinks {
        s.stored_lsn.store(recovery.first_lsn - 1, Relaxed);
    }
    metrics
        .wal_durable_lsn
        .store(recovery.next_lsn - 1, Relaxed);
    if first_start {
        // From now on the WAL and this checkpoint say where every stream is: later starts
        // need no sink to be reachable.
        files::write_checkpoint(&cfg.wal.dir, &recovered.last_seq)?;
    }
    Ok((wal, recovery, recovered, said))
}

/// Binds a Unix socket, removing a stale socket file first (one nobody listens on); a live
/// one is refused.
fn bind_unix(path: &std::path::Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another process listens on it",
            ));
        }
        std::fs::remove_file(path)?;
    }
    UnixListener::bind(path)
}

async fn accept_tcp(l: TcpListener, ingress: Ingress, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            r = l.accept() => match r {
                Ok((s, peer)) => {
                    let _ = s.set_nodelay(true);
                    let permit = ingress.admit();
                    tokio::spawn(ingress.clone().serve(s, format!("tcp {peer}"), permit));
                }
                Err(e) => net::accept_failed(e).await,
            }
        }
    }
}

async fn accept_unix(l: UnixListener, ingress: Ingress, mut stop: watch::Receiver<bool>) {
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            r = l.accept() => match r {
                Ok((s, _)) => {
                    n += 1;
                    let permit = ingress.admit();
                    tokio::spawn(ingress.clone().serve(s, format!("unix connection {n}"), permit));
                }
                Err(e) => net::accept_failed(e).await,
            }
        }
    }
}

async fn accept_http(l: TcpListener, ingress: Ingress, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            r = l.accept() => match r {
                Ok((s, peer)) => {
                    let Some(permit) = ingress.admit() else {
                        continue;
                    };
                    let ingress = ingress.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        let origin = format!("http {peer}");
                        let svc = hyper::service::service_fn(move |req| {
                            super::http::handle(ingress.clone(), origin.clone(), req)
                        });
                        net::serve_http(s, svc).await;
                    });
                }
                Err(e) => net::accept_failed(e).await,
            }
        }
    }
}
