//! The control API of a live session (HTTP, bearer token on every call, loopback by default,
//! TLS optional):
//!
//! | call | what it does |
//! | --- | --- |
//! | `GET /status` | the session: active, previous and shadow modules, per stream the last seq applied, decisions, orders, fills, PnL, shadow divergence, findings; swap pauses |
//! | `GET /modules` | modules known: name, version, sha256, role, since which seq per stream |
//! | `POST /modules?sha256=HEX` | upload a module (the body), refused unless its SHA-256 is the pin; compiled here, off the event path |
//! | `POST /swap` `{"sha256":..,"config":..}` | make it the active module (state handed over or caught up) |
//! | `POST /shadow` `{"sha256":..,"config":..}` | run it beside the active module, decisions compared, never executed |
//! | `POST /promote` | the shadow becomes the active module |
//! | `POST /rollback` | back to the module active before the last swap |
//! | `GET /metrics` | Prometheus: the recorder's figures and the engine's |
//!
//! Every action is an audit event in `live:<session>`, refused calls included.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::engine::{Command, CommandReply, Loaded, Request as EngineRequest};
use super::exec::audit_event;
use super::metrics::LiveMetrics;
use crate::hash::ModuleHash;
use crate::recorder::Submitter;
use crate::recorder::metrics::Metrics;
use crate::runtime::{Module, ModuleKind, Runtime};

/// The largest module upload accepted.
pub const MAX_MODULE_BYTES: usize = 64 << 20;

pub struct Control {
    pub token: String,
    pub session: String,
    pub rt: Arc<Runtime>,
    pub modules_dir: PathBuf,
    /// Modules uploaded (and the one started with), by sha256.
    pub modules: Mutex<BTreeMap<String, Module>>,
    pub commands: std::sync::mpsc::Sender<EngineRequest>,
    pub recorder: Arc<Metrics>,
    pub live: Arc<LiveMetrics>,
    pub submit: Submitter,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Choose {
    sha256: String,
    #[serde(default)]
    config: String,
}

type Resp = Response<Full<Bytes>>;

fn json_resp(status: StatusCode, v: &Value) -> Resp {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(
            serde_json::to_vec_pretty(v).expect("JSON"),
        )))
        .expect("response")
}

fn error(status: StatusCode, message: impl Into<String>) -> Resp {
    json_resp(status, &json!({ "error": message.into() }))
}

/// Equal without leaking where they differ through timing.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Control {
    /// Answers one request.
    pub async fn handle(
        self: Arc<Self>,
        peer: String,
        req: Request<hyper::body::Incoming>,
    ) -> Result<Resp, std::convert::Infallible> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let auth = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(token)
            })
            .map(str::trim);
        let reason = match auth {
            None => Some("no bearer token"),
            Some(t) if !same(t.as_bytes(), self.token.as_bytes()) => Some("wrong token"),
            Some(_) => None,
        };
        if let Some(reason) = reason {
            self.refused(&method, &path, &peer, reason);
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                format!(
                    "{reason}: send `Authorization: Bearer <token>` (the control token of live.toml)"
                ),
            );
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer"),
            );
            return Ok(r);
        }
        let r = match (method.clone(), path.as_str()) {
            (Method::GET, "/status") => self.status().await,
            (Method::GET, "/modules") => self.list().await,
            (Method::POST, "/modules") => self.upload(&peer, &query, req).await,
            (Method::POST, "/swap") => self.choose(req, Command::Swap).await,
            (Method::POST, "/shadow") => self.choose(req, Command::Shadow).await,
            (Method::POST, "/promote") => self.ask(Command::Promote).await,
            (Method::POST, "/rollback") => self.ask(Command::Rollback).await,
            (Method::GET, "/metrics") => {
                let mut text = self.recorder.render();
                self.live.render(&mut text);
                Response::builder()
                    .header(hyper::header::CONTENT_TYPE, "text/plain; version=0.0.4")
                    .body(Full::new(Bytes::from(text)))
                    .expect("response")
            }
            _ => error(
                StatusCode::NOT_FOUND,
                format!("no {method} {path}: see `tapedeck ctl --help` for the calls"),
            ),
        };
        Ok(r)
    }

    fn refused(&self, method: &Method, path: &str, peer: &str, reason: &str) {
        self.live.control_refused.fetch_add(1, Relaxed);
        tracing::warn!(%method, path, peer, reason, "control call refused");
        let e = audit_event(
            &self.session,
            "live_control_refused",
            json!({ "method": method.as_str(), "path": path, "peer": peer, "reason": reason }),
        );
        let submit = self.submit.clone();
        // On the blocking pool (bounded): the submission may wait on the sequencer.
        tokio::task::spawn_blocking(move || submit.submit_blocking(vec![e]));
    }

    async fn ask(&self, command: Command) -> Resp {
        match self.ask_raw(command).await {
            Ok(v) => json_resp(StatusCode::OK, &v),
            Err(e) => error(StatusCode::CONFLICT, e),
        }
    }

    async fn ask_raw(&self, command: Command) -> CommandReply {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.commands
            .send(EngineRequest { command, reply })
            .map_err(|_| "the live engine has stopped".to_string())?;
        // The engine answers between two batches; a catch-up can hold it for a while.
        match tokio::time::timeout(std::time::Duration::from_secs(60), rx).await {
            Ok(r) => r.map_err(|_| "the live engine stopped before answering".to_string())?,
            Err(_) => Err("the live engine did not answer within 60 s (a long catch-up?); GET /metrics says what it is doing".into()),
        }
    }

    async fn status(&self) -> Resp {
        match self.ask_raw(Command::Status).await {
            Ok(mut v) => {
                let pauses = self
                    .live
                    .pause_quantiles()
                    .map(|(p50, p99, max)| json!({ "p50_us": p50, "p99_us": p99, "max_us": max }));
                let latency = self
                    .live
                    .latency_quantiles()
                    .map(|(p50, p99, max)| json!({ "p50_us": p50, "p99_us": p99, "max_us": max }));
                v["swap_pause"] = pauses.unwrap_or(Value::Null);
                v["input_to_decision"] = latency.unwrap_or(Value::Null);
                v["wal_durable_lsn"] = json!(self.recorder.wal_durable_lsn.load(Relaxed));
                json_resp(StatusCode::OK, &v)
            }
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        }
    }

    async fn list(&self) -> Resp {
        let status = self.ask_raw(Command::Status).await.unwrap_or(Value::Null);
        let role = |sha: &str| {
            for r in ["active", "shadow", "previous"] {
                if status[r]["sha256"].as_str() == Some(sha) {
                    return r;
                }
            }
            "loaded"
        };
        let since = |sha: &str| {
            let mut m = serde_json::Map::new();
            if let Some(streams) = status["streams"].as_object() {
                for (k, s) in streams {
                    if s["module"].as_str() == Some(sha) {
                        m.insert(k.clone(), s["since_seq"].clone());
                    }
                }
            }
            Value::Object(m)
        };
        let list: Vec<Value> = self
            .modules
            .lock()
            .expect("modules lock")
            .iter()
            .map(|(sha, m)| {
                json!({
                    "sha256": sha,
                    "name": m.info().name,
                    "version": m.info().version,
                    "role": role(sha),
                    "since": since(sha),
                })
            })
            .collect();
        json_resp(StatusCode::OK, &json!({ "modules": list }))
    }

    async fn upload(&self, peer: &str, query: &str, req: Request<hyper::body::Incoming>) -> Resp {
        let pin = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("sha256="))
            .map(str::to_ascii_lowercase);
        let Some(pin) = pin.filter(|p| p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit()))
        else {
            return error(
                StatusCode::BAD_REQUEST,
                "pin the module: POST /modules?sha256=<64 hex digits of the file's SHA-256>",
            );
        };
        let body = match Limited::new(req.into_body(), MAX_MODULE_BYTES)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("reading the module (at most {MAX_MODULE_BYTES} bytes): {e}"),
                );
            }
        };
        let got = ModuleHash::of(&body).hex();
        if got != pin {
            let reason = format!("sha256 mismatch: the body's is {got}, the pin is {pin}");
            self.refused(&Method::POST, "/modules", peer, &reason);
            return error(StatusCode::BAD_REQUEST, reason);
        }
        // Compiled here, off the event path.
        let rt = self.rt.clone();
        let origin = format!("upload {pin}");
        let bytes = body.clone();
        let loaded = tokio::task::spawn_blocking(move || rt.load_bytes(&bytes, &origin)).await;
        let module = match loaded {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        if module.kind() != ModuleKind::Strategy {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "{} is a {}: live runs strategies",
                    module.info().name,
                    module.kind().as_str()
                ),
            );
        }
        let path = self.modules_dir.join(format!("{pin}.wasm"));
        if let Err(e) = crate::fs::write_atomic(&path, &body) {
            return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
        let info = json!({
            "sha256": pin,
            "name": module.info().name,
            "version": module.info().version,
            "bytes": body.len(),
        });
        self.modules
            .lock()
            .expect("modules lock")
            .insert(pin.clone(), module);
        let e = audit_event(&self.session, "live_module_uploaded", info.clone());
        let submit = self.submit.clone();
        let _ = tokio::task::spawn_blocking(move || submit.submit_blocking(vec![e])).await;
        json_resp(StatusCode::CREATED, &info)
    }

    async fn choose(
        &self,
        req: Request<hyper::body::Incoming>,
        make: fn(Arc<Loaded>) -> Command,
    ) -> Resp {
        let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let c: Choose = match serde_json::from_slice(&body) {
            Ok(c) => c,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "want {{\"sha256\": \"<uploaded module>\", \"config\": \"<its JSON config>\"}}: {e}"
                    ),
                );
            }
        };
        let sha = c.sha256.to_ascii_lowercase();
        let Some(module) = self
            .modules
            .lock()
            .expect("modules lock")
            .get(&sha)
            .cloned()
        else {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "no module {sha}: upload it first (POST /modules?sha256={sha}, or `tapedeck ctl upload FILE`)"
                ),
            );
        };
        let loaded = Arc::new(Loaded {
            module,
            sha256: sha,
            config: c.config,
        });
        // The config must be one the module accepts: tried here, off the event path.
        let rt = self.rt.clone();
        let probe = loaded.clone();
        let checked = tokio::task::spawn_blocking(move || {
            rt.instantiate(&probe.module)
                .and_then(|mut i| i.init(&probe.config))
        })
        .await;
        match checked {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("the module refuses its config: {e}"),
                );
            }
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
        self.ask(make(loaded)).await
    }
}
