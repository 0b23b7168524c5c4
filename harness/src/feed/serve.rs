//! The simulator's sockets: HTTP (the REST depth snapshot behind its rate limit,
//! `/sim/status`) and the WebSocket combined stream with its pings.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::state::{BOOK_WAIT, Frame, MAX_LIMIT, Refusal, Shared};
use crate::net;

/// A rate-limited request's answer (counted).
fn refusal(shared: &Shared, r: Refusal) -> Resp {
    let (mut resp, wait) = match r {
        Refusal::TooMany { retry_after } => {
            shared.rate_limited.fetch_add(1, Relaxed);
            let msg = "Too many requests; wait for the Retry-After.";
            (
                error(StatusCode::TOO_MANY_REQUESTS, -1003, msg),
                retry_after,
            )
        }
        Refusal::Banned { retry_after } => {
            shared.banned.fetch_add(1, Relaxed);
            let msg = "Way too many requests; IP banned until the Retry-After has passed.";
            (error(StatusCode::IM_A_TEAPOT, -1003, msg), retry_after)
        }
    };
    resp.headers_mut().insert("retry-after", wait.into());
    resp
}

pub(super) async fn accept(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                net::accept_failed(e).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (tls, shared) = (tls.clone(), shared.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            match tls {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(s) => net::serve_http(s, service).await,
                    Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                },
                None => net::serve_http(tcp, service).await,
            }
        });
    }
}

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", ctype)
        .body(Full::new(body.into()))
        .expect("a valid response")
}

/// A Binance-style error body.
fn error(status: StatusCode, code: i64, msg: &str) -> Resp {
    let body = serde_json::json!({ "code": code, "msg": msg }).to_string();
    reply(status, "application/json", body)
}

fn query(req: &Request<hyper::body::Incoming>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<hyper::body::Incoming>,
) -> std::result::Result<Resp, Infallible> {
    let resp = match req.uri().path() {
        "/stream" | "/stream/" => websocket(shared, req),
        "/api/v3/depth" | "/fapi/v1/depth" => {
            let refused = shared
                .rest
                .as_ref()
                .and_then(|r| r.lock().unwrap().check(Instant::now()));
            match refused {
                Some(r) => refusal(&shared, r),
                None => depth(&shared, &req).await,
            }
        }
        "/sim/status" => reply(
            StatusCode::OK,
            "application/json",
            serde_json::to_string(&shared.status()).expect("status serializes"),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: the feed simulator serves /stream (WebSocket), /api/v3/depth, /fapi/v1/depth, /sim/status\n",
        ),
    };
    Ok(resp)
}

async fn depth(shared: &Shared, req: &Request<hyper::body::Incoming>) -> Resp {
    let Some(symbol) = query(req, "symbol").map(|s| s.to_ascii_uppercase()) else {
        return error(
            StatusCode::BAD_REQUEST,
            -1102,
            "Mandatory parameter 'symbol' was not sent.",
        );
    };
    let limit = match query(req, "limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(l)) if l > 0 => l.min(MAX_LIMIT),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                -1100,
                "Illegal characters found in parameter 'limit'.",
            );
        }
    };
    let deadline = tokio::time::Instant::now() + BOOK_WAIT;
    loop {
        let known = shared.book_known.notified();
        {
            let books = shared.books.lock().unwrap();
            if let Some(o) = books.get(&symbol).filter(|o| o.known()) {
                shared.snapshots_served.fetch_add(1, Relaxed);
                return reply(
                    StatusCode::OK,
                    "application/json",
                    o.lagged.snapshot_json(limit),
                );
            }
            if shared.done.load(Relaxed) && !books.contains_key(&symbol) {
                return error(StatusCode::BAD_REQUEST, -1121, "Invalid symbol.");
            }
        }
        if tokio::time::timeout_at(deadline, known).await.is_err() {
            let msg =
                format!("no book of {symbol} yet: the capture has not reached a snapshot of it");
            return error(StatusCode::SERVICE_UNAVAILABLE, -1, &msg);
        }
    }
}

fn websocket(shared: Arc<Shared>, mut req: Request<hyper::body::Incoming>) -> Resp {
    let Some(key) = req.headers().get("sec-websocket-key") else {
        return error(
            StatusCode::BAD_REQUEST,
            -1,
            "/stream is a WebSocket endpoint",
        );
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let streams: HashSet<String> = query(&req, "streams")
        .map(|s| s.split('/').map(str::to_string).collect())
        .unwrap_or_default();
    // Subscribed before the upgrade answer, so nothing sent after it is missed.
    let rx = shared.tx.subscribe();
    shared.connections.fetch_add(1, Relaxed);
    if let Some(start) = shared.start.lock().unwrap().take() {
        let _ = start.send(());
    }
    tokio::spawn(async move {
        match hyper::upgrade::on(&mut req).await {
            Ok(up) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
                pump(ws, rx, streams, &shared).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", accept)
        .body(Full::new(Bytes::new()))
        .expect("a valid response")
}

async fn pump<S>(
    mut ws: WebSocketStream<S>,
    mut rx: broadcast::Receiver<Frame>,
    streams: HashSet<String>,
    shared: &Shared,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // Pings carry their number; a pong answers every ping up to the one it echoes.
    let mut pinger = shared.ping_every.map(|d| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut pinged = 0u64;
    let mut unanswered: std::collections::VecDeque<(u64, Instant)> = Default::default();
    loop {
        let tick = async {
            match pinger.as_mut() {
                Some(t) => t.tick().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick => {
                if unanswered.front().is_some_and(|(_, at)| at.elapsed() > shared.pong_timeout) {
                    shared.pong_timeouts.fetch_add(1, Relaxed);
                    let reason = "pong timeout".into();
                    let _ = ws.close(Some(CloseFrame { code: CloseCode::Policy, reason })).await;
                    return;
                }
                pinged += 1;
                unanswered.push_back((pinged, Instant::now()));
                shared.pings.fetch_add(1, Relaxed);
                if ws.send(Message::Ping(pinged.to_be_bytes().to_vec().into())).await.is_err() {
                    return;
                }
            }
            frame = rx.recv() => match frame {
                Ok(Frame::Msg { stream, text }) => {
                    if streams.contains(&*stream) && ws.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
                // The exchange went away: no close frame.
                Ok(Frame::Disconnect) | Err(broadcast::error::RecvError::Closed) => return,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let reason = format!("too slow: {n} messages behind");
                    let frame = CloseFrame { code: CloseCode::Policy, reason: reason.into() };
                    let _ = ws.close(Some(frame)).await;
                    return;
                }
            },
            msg = ws.next() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Pong(p))) => {
                    // An unsolicited pong (allowed) answers nothing.
                    let n = <[u8; 8]>::try_from(&p[..]).map_or(0, u64::from_be_bytes);
                    while unanswered.front().is_some_and(|(k, _)| *k <= n) {
                        unanswered.pop_front();
                        shared.pongs.fetch_add(1, Relaxed);
                    }
                }
                Some(Ok(_)) => {}
            },
        }
    }
}
