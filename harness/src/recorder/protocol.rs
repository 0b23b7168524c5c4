//! The ingress protocol, shared by every input: one JSON envelope per line (or per element of
//! an HTTP batch) without a seq, one reply per event.
//!
//! An input event is an envelope (see [`Envelope`]) whose `seq` is left out (the recorder
//! assigns it) and whose `event_id` and `ingested_at` may be: `ingested_at` is when the
//! recorder took it; an `event_id` given by the sender makes a resend after a lost reply
//! safe (it is acknowledged with the seq it got the first time, not recorded twice).
//!
//! Replies: `{"ack":ID,"seq":N}` once the event is durable, or `{"nack":ID,"error":"..."}`.
//! `ID` is the event's `event_id` when it has one, else its line number on the connection
//! (its index in an HTTP batch, from 1).

use serde::{Deserialize, Serialize};

use crate::event::{Body, Correlation, Envelope, EnvelopeFields, Tenancy};

/// What names an event in its reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AckId {
    Line(u64),
    Id(String),
}

/// One input event as sent.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub event_id: Option<String>,
    pub stream_key: String,
    /// Refused when given: seqs are the recorder's.
    pub seq: Option<u64>,
    pub occurred_at: i64,
    pub ingested_at: Option<i64>,
    pub instrument: Option<String>,
    pub tenancy: Tenancy,
    pub correlation: Correlation,
    pub idempotency_key: Option<String>,
    pub body: Body,
}

impl<'de> Deserialize<'de> for Incoming {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = EnvelopeFields::deserialize(d)?;
        let need = <D::Error as serde::de::Error>::missing_field;
        Ok(Incoming {
            event_id: f.event_id,
            stream_key: f.stream_key.ok_or_else(|| need("stream_key"))?,
            seq: f.seq,
            occurred_at: f.occurred_at.ok_or_else(|| need("occurred_at"))?,
            ingested_at: f.ingested_at,
            instrument: f.instrument,
            tenancy: f.tenancy,
            correlation: f.correlation,
            idempotency_key: f.idempotency_key,
            body: f.body.ok_or_else(|| need("event_type"))?,
        })
    }
}

/// Longest stream key accepted (keys name files in the file store).
pub const MAX_STREAM_KEY: usize = 512;

impl Incoming {
    /// Parses and checks one input line; the error is the nack's reason.
    pub fn parse(line: &[u8]) -> Result<Incoming, String> {
        let inc: Incoming =
            serde_json::from_slice(line).map_err(|e| format!("not an event envelope: {e}"))?;
        inc.check()?;
        Ok(inc)
    }

    fn check(&self) -> Result<(), String> {
        if let Some(seq) = self.seq {
            return Err(format!(
                "seq {seq} given: the recorder assigns seqs; leave `seq` out"
            ));
        }
        if self.stream_key.is_empty() || self.stream_key.len() > MAX_STREAM_KEY {
            return Err(format!("stream_key must be 1 to {MAX_STREAM_KEY} bytes"));
        }
        if self.stream_key.chars().any(char::is_control) {
            return Err("stream_key holds a control character".into());
        }
        if self.event_id.as_deref().is_some_and(str::is_empty) {
            return Err("event_id is empty".into());
        }
        Ok(())
    }

    /// The reply id of this event, given its line number.
    pub fn ack_id(&self, line: u64) -> AckId {
        match &self.event_id {
            Some(id) => AckId::Id(id.clone()),
            None => AckId::Line(line),
        }
    }

    /// What makes a resend the same event: its `idempotency_key`, else `rec:<stream>:<event_id>`
    /// when it has an id; None (never a resend) without either.
    pub fn dedup_key(&self) -> Option<String> {
        self.idempotency_key.clone().or_else(|| {
            self.event_id
                .as_ref()
                .map(|id| format!("rec:{}:{id}", self.stream_key))
        })
    }

    /// The envelope it becomes at `seq`, taken at `now` (ns), with `idempotency_key` its
    /// [`Incoming::dedup_key`] (computed once by the caller, which also dedups by it), so the
    /// stores (PostgreSQL keys events by it) agree with the recorder on what one event is.
    pub fn into_envelope(self, seq: u64, now: i64, idempotency_key: Option<String>) -> Envelope {
        debug_assert_eq!(idempotency_key, self.dedup_key());
        let event_id = self
            .event_id
            .unwrap_or_else(|| crate::event::derived_ulid(self.occurred_at, &self.stream_key, seq));
        Envelope {
            event_id,
            stream_key: self.stream_key,
            seq,
            occurred_at: self.occurred_at,
            ingested_at: now,
            instrument: self.instrument,
            tenancy: self.tenancy,
            correlation: self.correlation,
            idempotency_key,
            body: self.body,
        }
    }
}

/// One reply line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    Ack { ack: AckId, seq: u64 },
    Nack { nack: AckId, error: String },
}

impl Reply {
    pub fn nack(id: AckId, error: impl Into<String>) -> Reply {
        Reply::Nack {
            nack: id,
            error: error.into(),
        }
    }

    pub fn is_ack(&self) -> bool {
        matches!(self, Reply::Ack { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_without_seq_parses_and_replies_name_it() {
        let line = br#"{"stream_key":"exec:sim:SYM1","occurred_at":5,"event_type":"order_cancelled","payload":{"client_order_id":7}}"#;
        let inc = Incoming::parse(line).unwrap();
        assert_eq!(inc.ack_id(3), AckId::Line(3));
        let key = inc.dedup_key();
        let e = inc.into_envelope(9, 11, key);
        assert_eq!((e.seq, e.ingested_at, e.occurred_at), (9, 11, 5));
        let r = serde_json::to_string(&Reply::Ack {
            ack: AckId::Line(3),
            seq: 9,
        })
        .unwrap();
        assert_eq!(r, r#"{"ack":3,"seq":9}"#);
        let r = serde_json::to_string(&Reply::nack(AckId::Id("x".into()), "no")).unwrap();
        assert_eq!(r, r#"{"nack":"x","error":"no"}"#);
    }

    #[test]
    fn bad_events_are_refused_with_a_reason() {
        let cases: [(&[u8], &str); 4] = [
            (b"{", "not an event envelope"),
            (
                br#"{"stream_key":"s","seq":4,"occurred_at":1,"event_type":"order_cancelled","payload":{"client_order_id":7}}"#,
                "assigns seqs",
            ),
            (
                br#"{"stream_key":"s","occurred_at":1,"event_type":"warp","payload":{}}"#,
                "not an event envelope",
            ),
            (
                br#"{"stream_key":"","occurred_at":1,"event_type":"order_cancelled","payload":{"client_order_id":7}}"#,
                "stream_key",
            ),
        ];
        for (line, want) in cases {
            let err = Incoming::parse(line).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }
}
