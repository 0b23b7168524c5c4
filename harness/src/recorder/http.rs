//! The recorder's HTTP face: `POST /events` (one envelope, or a JSON array of them; replies in
//! the same shape, sent once durable), `GET /metrics` (Prometheus) and `GET /healthz`.
//!
//! `POST /events` answers 200 with the replies (each event acked or nacked, as on the
//! sockets; an event's reply id is its `event_id`, else its index from 1), 400 when the body
//! is not JSON (quarantined), 413 past `max_body_bytes`, 503 while stopping.

use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming as Body;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::value::RawValue;

use super::Class;
use super::ingress::Ingress;
use super::protocol::{AckId, Incoming, Reply};
use super::sequencer::Item;

/// Largest `POST /events` body.
pub fn max_body_bytes(ingress: &Ingress) -> usize {
    ingress.max_line_bytes.saturating_mul(32)
}

pub async fn handle(
    ingress: Ingress,
    origin: String,
    req: Request<Body>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let resp = match (req.method(), req.uri().path()) {
        (&Method::POST, "/events") => post_events(&ingress, &origin, req).await,
        (&Method::GET, "/metrics") => text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            ingress.metrics.render(),
        ),
        (&Method::GET, "/healthz") => healthz(&ingress),
        (_, "/events" | "/metrics" | "/healthz") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "POST /events, GET /metrics, GET /healthz\n".into(),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: the recorder serves POST /events, GET /metrics, GET /healthz\n".into(),
        ),
    };
    Ok(resp)
}

fn text(status: StatusCode, ctype: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

fn json(status: StatusCode, v: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let mut b = serde_json::to_vec(v).expect("json");
    b.push(b'\n');
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(b)))
        .expect("a valid response")
}

async fn post_events(ingress: &Ingress, origin: &str, req: Request<Body>) -> Response<Full<Bytes>> {
    let limit = max_body_bytes(ingress);
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let too_big = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            return if too_big {
                json(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &serde_json::json!({ "error": format!("body over {limit} bytes; send smaller batches") }),
                )
            } else {
                json(
                    StatusCode::BAD_REQUEST,
                    &serde_json::json!({ "error": format!("reading the body: {e}") }),
                )
            };
        }
    };
    let bad = |error: String| {
        Item::bad(
            AckId::Line(1),
            error,
            format!("{origin} POST /events"),
            &body,
        )
    };
    // Elements kept raw: each is read as an event on its own, and a refused one is quarantined
    // as it was sent.
    let single = body.trim_ascii_start().first() != Some(&b'[');
    let parsed = if single {
        serde_json::from_slice::<&RawValue>(&body).map(|v| vec![v])
    } else {
        serde_json::from_slice::<Vec<&RawValue>>(&body)
    };
    let values = match parsed {
        Ok(v) => v,
        Err(e) => {
            let error = format!("the body is not JSON: {e}");
            // Quarantined like a bad line; the reply is the nack.
            let replies = match ingress.submit(vec![bad(error.clone())]).await {
                Some(rx) => rx.await.unwrap_or_default(),
                None => Vec::new(),
            };
            return json(
                StatusCode::BAD_REQUEST,
                &replies
                    .into_iter()
                    .next()
                    .unwrap_or(Reply::nack(AckId::Line(1), error)),
            );
        }
    };
    let items: Vec<Item> = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let n = i as u64 + 1;
            match Incoming::parse(v.get().as_bytes()) {
                Ok(inc) => Item::Event {
                    id: inc.ack_id(n),
                    event: Box::new(inc),
                },
                Err(error) => {
                    let origin = format!("{origin} POST /events element {n}");
                    Item::bad(AckId::Line(n), error, origin, v.get().as_bytes())
                }
            }
        })
        .collect();
    if items.is_empty() {
        return json(StatusCode::OK, &Vec::<Reply>::new());
    }
    let Some(rx) = ingress.submit(items).await else {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "error": "the recorder is stopping" }),
        );
    };
    match rx.await {
        Ok(replies) if single => json(StatusCode::OK, &replies[0]),
        Ok(replies) => json(StatusCode::OK, &replies),
        Err(_) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "error": "the recorder stopped before the events were durable" }),
        ),
    }
}

fn healthz(ingress: &Ingress) -> Response<Full<Bytes>> {
    let m = &ingress.metrics;
    let sinks: Vec<serde_json::Value> = m
        .sinks
        .iter()
        .enumerate()
        .map(|(i, s)| {
            serde_json::json!({
                "sink": s.name,
                "failing": s.failing.load(Relaxed) == 1,
                "last_error": s.last_error.lock().expect("metrics lock").clone(),
                "stored_lsn": s.stored_lsn.load(Relaxed),
                "queued": Class::ALL.iter().map(|c| m.queued(i, *c)).sum::<u64>(),
            })
        })
        .collect();
    let degraded =
        m.sinks.iter().any(|s| s.failing.load(Relaxed) == 1) || m.overloaded.load(Relaxed) == 1;
    // 200 while the recorder takes events (a sink outage is what the WAL is for); the body
    // says what is degraded.
    json(
        StatusCode::OK,
        &serde_json::json!({
            "status": if degraded { "degraded" } else { "ok" },
            "overloaded": m.overloaded.load(Relaxed) == 1,
            "wal": {
                "durable_lsn": m.wal_durable_lsn.load(Relaxed),
                "bytes": m.wal_bytes.load(Relaxed),
                "segments": m.wal_segments.load(Relaxed),
            },
            "sinks": sinks,
        }),
    )
}
