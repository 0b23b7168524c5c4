//! Idempotency keys (seed 003): what makes two events "the same event" to the store.
//!
//! A key is `idem_` + SHA-256 over tenant, stream, command and the normalized payload; the
//! store keeps the SHA-256 of the key (given by the writer, or derived here) in `event_keys`,
//! unique across all streams. Invariants: the seq, `event_id`, `ingested_at` and volatile
//! payload fields (`*_at`, `actor_id`, `actor_type`, `request_id`, at any depth) never change a
//! key; the derivation is a pure function of the event, so a retry on another machine claims
//! the same key.

use sha2::{Digest, Sha256};

use crate::event::{Body, Envelope};

/// The idempotency key of an event (seed 003): `idem_` + SHA-256 over tenant, stream, command
/// and the normalized payload. Normalizing drops `*_at` timestamps, `actor_id`, `actor_type` and
/// `request_id` at any depth and sorts keys. An event without a command id (market data) adds
/// its event type, instrument and event time: without them two equal quotes would be one.
pub fn idempotency_key(e: &Envelope) -> String {
    let payload = payload_value(&e.body);
    derive_key(e, &payload, &payload.to_string())
}

/// [`idempotency_key`] given the event's payload and its JSON text.
pub(super) fn derive_key(e: &Envelope, payload: &serde_json::Value, text: &str) -> String {
    fn volatile(k: &str) -> bool {
        k.ends_with("_at") || k == "actor_id" || k == "actor_type" || k == "request_id"
    }
    fn any_volatile(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(m) => m.iter().any(|(k, v)| volatile(k) || any_volatile(v)),
            serde_json::Value::Array(a) => a.iter().any(any_volatile),
            _ => false,
        }
    }
    fn normalize(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| !volatile(k));
                m.values_mut().for_each(normalize);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(normalize),
            _ => {}
        }
    }
    // serde_json's map is ordered, so the text is the canonical form.
    let normalized;
    let text = if any_volatile(payload) {
        let mut p = payload.clone();
        normalize(&mut p);
        normalized = p.to_string();
        &normalized
    } else {
        text
    };
    let mut h = Sha256::new();
    let mut part = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    part(e.tenancy.tenant_id.as_deref().unwrap_or(""));
    part(&e.stream_key);
    match &e.correlation.command_id {
        Some(c) => part(c),
        None => {
            part("");
            part(e.body.event_type());
            part(e.instrument.as_deref().unwrap_or(""));
            part(&e.occurred_at.to_string());
        }
    }
    part(text);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut key = String::with_capacity(5 + 64);
    key.push_str("idem_");
    for b in h.finalize() {
        key.push(HEX[(b >> 4) as usize] as char);
        key.push(HEX[(b & 15) as usize] as char);
    }
    key
}

/// The `payload` object of an event body (`{}` for a body without fields).
pub(super) fn payload_value(body: &Body) -> serde_json::Value {
    let mut v = serde_json::to_value(body).expect("bodies serialize");
    v.as_object_mut()
        .and_then(|m| m.remove("payload"))
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Dec;

    fn quote(seq: u64, t: i64, bid: i64) -> Envelope {
        Envelope::new(
            "md:x",
            seq,
            t,
            Some("BTCUSDT"),
            Body::Quote {
                bid_px: Dec::new(bid, 2),
                bid_qty: Dec::new(1, 0),
                ask_px: Dec::new(bid + 1, 2),
                ask_qty: Dec::new(1, 0),
                update_id: None,
            },
        )
    }

    #[test]
    fn idempotency_keys_ignore_seq_and_wall_clock_but_not_content() {
        let a = quote(1, 1_000, 100);
        let mut b = quote(7, 1_000, 100);
        b.ingested_at = 99;
        b.event_id = "other".into();
        assert_eq!(idempotency_key(&a), idempotency_key(&b));
        assert_ne!(idempotency_key(&a), idempotency_key(&quote(1, 1_001, 100)));
        assert_ne!(idempotency_key(&a), idempotency_key(&quote(1, 1_000, 101)));
        let mut c = a.clone();
        c.tenancy.tenant_id = Some("t1".into());
        assert_ne!(idempotency_key(&a), idempotency_key(&c));
        // With a command id, event time is not part of it; `*_at` payload fields never are.
        let cmd = |t: i64, at: i64| {
            let mut e = Envelope::new(
                "orders:x",
                1,
                t,
                None,
                Body::Custom {
                    type_name: "note".into(),
                    data: serde_json::json!({"text": "hi", "sent_at": at, "actor_id": at}),
                },
            );
            e.correlation.command_id = Some("cmd-1".into());
            e
        };
        assert_eq!(idempotency_key(&cmd(1, 5)), idempotency_key(&cmd(2, 6)));
        assert!(idempotency_key(&a).starts_with("idem_") && idempotency_key(&a).len() == 69);
    }
}
