//! The envelope: ids, stream and seq, times, tenancy, correlation and the body. One shape for
//! every store and every ingress.
//!
//! Written flat (`{"event_id":..,"stream_key":..,..,"event_type":..,"payload":{..}}`) and read
//! field by field ([`EnvelopeFields`]): serde's `flatten` first buffers every field of every
//! line as generic content, then reads the flattened parts from that buffer (the fixture
//! store's lines read ~1.25x faster without it: 650-750 ns a line against 850-880 ns).

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use super::{Body, derived_ulid};

/// Tenancy columns (seeds 000/001/003); all optional.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Tenancy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
}

/// Correlation columns; all optional.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Correlation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
}

/// The full envelope of one recorded event.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Envelope {
    /// ULID; derived from event time and (stream, seq) when not given, so imports are
    /// deterministic.
    pub event_id: String,
    pub stream_key: String,
    /// Per stream, gapless, from 1.
    pub seq: u64,
    /// Event time, ns since the Unix epoch.
    pub occurred_at: i64,
    /// When it was recorded, ns since the Unix epoch.
    pub ingested_at: i64,
    /// Instrument symbol (or asset, for balances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instrument: Option<String>,
    #[serde(flatten)]
    pub tenancy: Tenancy,
    #[serde(flatten)]
    pub correlation: Correlation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(flatten)]
    pub body: Body,
}

impl Envelope {
    /// A new envelope with a derived event id.
    pub fn new(
        stream_key: &str,
        seq: u64,
        occurred_at: i64,
        instrument: Option<&str>,
        body: Body,
    ) -> Self {
        Envelope {
            event_id: derived_ulid(occurred_at, stream_key, seq),
            stream_key: stream_key.to_string(),
            seq,
            occurred_at,
            ingested_at: occurred_at,
            instrument: instrument.map(str::to_string),
            tenancy: Tenancy::default(),
            correlation: Correlation::default(),
            idempotency_key: None,
            body,
        }
    }
}

/// An envelope's fields as read, before any is required: what [`Envelope`] and the
/// recorder's input (which has no seq, and may have no id or ingest time) are built from.
/// Unknown fields are ignored; the payload is kept raw until its `event_type` is known, then
/// read as the [`Body`] of that type.
#[derive(Debug, Default)]
pub struct EnvelopeFields {
    pub event_id: Option<String>,
    pub stream_key: Option<String>,
    pub seq: Option<u64>,
    pub occurred_at: Option<i64>,
    pub ingested_at: Option<i64>,
    pub instrument: Option<String>,
    pub tenancy: Tenancy,
    pub correlation: Correlation,
    pub idempotency_key: Option<String>,
    pub body: Option<Body>,
}

/// The field names an envelope may have.
enum Field {
    EventId,
    StreamKey,
    Seq,
    OccurredAt,
    IngestedAt,
    Instrument,
    TenantId,
    OwnerId,
    WorkspaceId,
    ProjectId,
    TraceId,
    CausationId,
    CommandId,
    WorkflowId,
    IdempotencyKey,
    EventType,
    Payload,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
        struct K;
        impl Visitor<'_> for K {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Field, E> {
                Ok(match s {
                    "event_id" => Field::EventId,
                    "stream_key" => Field::StreamKey,
                    "seq" => Field::Seq,
                    "occurred_at" => Field::OccurredAt,
                    "ingested_at" => Field::IngestedAt,
                    "instrument" => Field::Instrument,
                    "tenant_id" => Field::TenantId,
                    "owner_id" => Field::OwnerId,
                    "workspace_id" => Field::WorkspaceId,
                    "project_id" => Field::ProjectId,
                    "trace_id" => Field::TraceId,
                    "causation_id" => Field::CausationId,
                    "command_id" => Field::CommandId,
                    "workflow_id" => Field::WorkflowId,
                    "idempotency_key" => Field::IdempotencyKey,
                    "event_type" => Field::EventType,
                    "payload" => Field::Payload,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_identifier(K)
    }
}

impl<'de> Deserialize<'de> for EnvelopeFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EnvelopeFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event envelope (a JSON object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<EnvelopeFields, A::Error> {
                let mut f = EnvelopeFields::default();
                let mut event_type: Option<String> = None;
                let mut payload: Option<Box<RawValue>> = None;
                while let Some(k) = m.next_key::<Field>()? {
                    match k {
                        Field::EventId => f.event_id = m.next_value()?,
                        Field::StreamKey => f.stream_key = m.next_value()?,
                        Field::Seq => f.seq = m.next_value()?,
                        Field::OccurredAt => f.occurred_at = m.next_value()?,
                        Field::IngestedAt => f.ingested_at = m.next_value()?,
                        Field::Instrument => f.instrument = m.next_value()?,
                        Field::TenantId => f.tenancy.tenant_id = m.next_value()?,
                        Field::OwnerId => f.tenancy.owner_id = m.next_value()?,
                        Field::WorkspaceId => f.tenancy.workspace_id = m.next_value()?,
                        Field::ProjectId => f.tenancy.project_id = m.next_value()?,
                        Field::TraceId => f.correlation.trace_id = m.next_value()?,
                        Field::CausationId => f.correlation.causation_id = m.next_value()?,
                        Field::CommandId => f.correlation.command_id = m.next_value()?,
                        Field::WorkflowId => f.correlation.workflow_id = m.next_value()?,
                        Field::IdempotencyKey => f.idempotency_key = m.next_value()?,
                        Field::EventType => event_type = Some(m.next_value()?),
                        Field::Payload => payload = Some(m.next_value()?),
                        Field::Other => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                if let Some(t) = event_type {
                    f.body = Some(body_of(&t, payload.as_deref()).map_err(de::Error::custom)?);
                }
                Ok(f)
            }
        }
        d.deserialize_map(V)
    }
}

/// The body of `event_type` from its raw payload, through [`Body`]'s own reader.
fn body_of(event_type: &str, payload: Option<&RawValue>) -> serde_json::Result<Body> {
    /// The two fields of the adjacently tagged body, tag first; `next` counts the values read.
    struct Parts<'a> {
        tag: &'a str,
        payload: Option<&'a RawValue>,
        next: u8,
    }
    impl<'a> MapAccess<'a> for Parts<'a> {
        type Error = serde_json::Error;
        fn next_key_seed<K: de::DeserializeSeed<'a>>(
            &mut self,
            seed: K,
        ) -> serde_json::Result<Option<K::Value>> {
            let key = match self.next {
                0 => "event_type",
                1 if self.payload.is_some() => "payload",
                _ => return Ok(None),
            };
            seed.deserialize(de::value::BorrowedStrDeserializer::new(key))
                .map(Some)
        }
        fn next_value_seed<V: de::DeserializeSeed<'a>>(
            &mut self,
            seed: V,
        ) -> serde_json::Result<V::Value> {
            self.next += 1;
            match (self.next, self.payload.take()) {
                (1, p) => {
                    self.payload = p;
                    seed.deserialize(de::value::BorrowedStrDeserializer::new(self.tag))
                }
                (_, Some(p)) => seed.deserialize(p),
                (_, None) => Err(de::Error::custom("no more fields")),
            }
        }
    }
    Body::deserialize(de::value::MapAccessDeserializer::new(Parts {
        tag: event_type,
        payload,
        next: 0,
    }))
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = EnvelopeFields::deserialize(d)?;
        let need = <D::Error as de::Error>::missing_field;
        Ok(Envelope {
            event_id: f.event_id.ok_or_else(|| need("event_id"))?,
            stream_key: f.stream_key.ok_or_else(|| need("stream_key"))?,
            seq: f.seq.ok_or_else(|| need("seq"))?,
            occurred_at: f.occurred_at.ok_or_else(|| need("occurred_at"))?,
            ingested_at: f.ingested_at.ok_or_else(|| need("ingested_at"))?,
            instrument: f.instrument,
            tenancy: f.tenancy,
            correlation: f.correlation,
            idempotency_key: f.idempotency_key,
            body: f.body.ok_or_else(|| need("event_type"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The envelope as serde's derive with `flatten` read it, before [`EnvelopeFields`].
    #[derive(Deserialize, Debug)]
    struct Flattened {
        event_id: String,
        stream_key: String,
        seq: u64,
        occurred_at: i64,
        ingested_at: i64,
        #[serde(default)]
        instrument: Option<String>,
        #[serde(flatten)]
        tenancy: Tenancy,
        #[serde(flatten)]
        correlation: Correlation,
        #[serde(default)]
        idempotency_key: Option<String>,
        #[serde(flatten)]
        body: Body,
    }

    /// Every line of the fixture store (every event type).
    fn fixture_lines() -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/store/events");
        let mut lines = Vec::new();
        for day in std::fs::read_dir(dir).unwrap() {
            for part in std::fs::read_dir(day.unwrap().path()).unwrap() {
                let text = std::fs::read_to_string(part.unwrap().path()).unwrap();
                lines.extend(text.lines().map(str::to_string));
            }
        }
        assert!(lines.len() > 1000);
        lines
    }

    #[test]
    fn every_fixture_line_reads_as_the_flattening_derive_read_it() {
        for line in fixture_lines() {
            let e: Envelope = serde_json::from_str(&line).unwrap();
            let f: Flattened = serde_json::from_str(&line).unwrap();
            let from_f = Envelope {
                event_id: f.event_id,
                stream_key: f.stream_key,
                seq: f.seq,
                occurred_at: f.occurred_at,
                ingested_at: f.ingested_at,
                instrument: f.instrument,
                tenancy: f.tenancy,
                correlation: f.correlation,
                idempotency_key: f.idempotency_key,
                body: f.body,
            };
            assert_eq!(e, from_f, "{line}");
            let again: Envelope = serde_json::from_slice(&serde_json::to_vec(&e).unwrap()).unwrap();
            assert_eq!(again, e);
        }
    }

    #[test]
    fn missing_fields_are_named_unknown_ones_ignored_and_order_is_free() {
        let read = |s: &str| serde_json::from_str::<Envelope>(s).map_err(|e| e.to_string());
        let payload = r#""payload":{"client_order_id":7}"#;
        let full = format!(
            r#"{{"event_id":"x","stream_key":"s","seq":1,"occurred_at":2,"ingested_at":3,"event_type":"order_cancelled",{payload}}}"#
        );
        let e = read(&full).unwrap();
        assert_eq!((e.seq, e.occurred_at, e.ingested_at), (1, 2, 3));
        let reordered = format!(
            r#"{{{payload},"colour":[1,{{"a":null}}],"instrument":null,"event_type":"order_cancelled","ingested_at":3,"occurred_at":2,"seq":1,"stream_key":"s","event_id":"x","trace_id":"t"}}"#
        );
        let r = read(&reordered).unwrap();
        assert_eq!(r.correlation.trace_id.as_deref(), Some("t"));
        assert_eq!(r.body, e.body);
        for (drop, want) in [
            (r#""seq":1,"#, "missing field `seq`"),
            (
                r#""event_type":"order_cancelled","#,
                "missing field `event_type`",
            ),
        ] {
            let err = read(&full.replace(drop, "")).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
        let err = read(&full.replace(&format!(",{payload}"), "")).unwrap_err();
        assert!(err.contains("payload"), "{err}");
        let err = read(&full.replace(r#""seq":1"#, r#""seq":"one""#)).unwrap_err();
        assert!(err.contains("invalid type"), "{err}");
        assert!(read("[1]").unwrap_err().contains("an event envelope"));
    }
}
